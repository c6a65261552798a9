"""The run's verdict from its own figures: mean throughput per system, the ratios between
systems measured in this invocation, CPU per 1,000 jobs, and the targets."""
from __future__ import annotations

from .stats import mean, ratio

TARGETS = (
    ("TaskForce / Celery throughput", ">=", 1.0),
    ("TaskForce / raw throughput", ">=", 0.5),
    ("TaskForce p99 submit→start at half load (ms)", "<=", 50.0),
)


def summarise(res: dict) -> dict:
    tput = {n: mean(r["jobs_per_s"] for r in rounds) for n, rounds in res["throughput"].items() if rounds}
    cpu: dict[str, dict[str, float]] = {}
    for n, rounds in res["throughput"].items():
        per = [r.get("cpu_per_1000") or {} for r in rounds]
        keys = sorted({k for p in per for k in p})
        cpu[n] = {k: round(mean(p.get(k) for p in per), 3) for k in keys}
    comps = sorted({k for c in cpu.values() for k in c if k != "total"})
    tf_p99 = (res.get("latency", {}).get("taskforce") or {}).get("submit_to_start_p99_ms")
    values = {TARGETS[0][0]: ratio(tput.get("taskforce"), tput.get("celery")),
              TARGETS[1][0]: ratio(tput.get("taskforce"), tput.get("raw")),
              TARGETS[2][0]: tf_p99}
    targets = []
    for name, op, target in TARGETS:
        v = values[name]
        met = v is not None and (v >= target if op == ">=" else v <= target)
        targets.append({"name": name, "value": v, "op": op, "target": target, "met": met})
    # Per round too: each TaskForce round against the other systems' rounds of the same pass.
    per_round = []
    for i in range(max((len(r) for r in res["throughput"].values()), default=0)):
        row = {n: rounds[i]["jobs_per_s"] for n, rounds in res["throughput"].items() if i < len(rounds)}
        per_round.append({"round": i + 1, **row, "tf_over_celery": ratio(row.get("taskforce"), row.get("celery")),
                          "tf_over_raw": ratio(row.get("taskforce"), row.get("raw"))})
    variants = {n: ratio(v, tput.get("taskforce")) for n, v in tput.items() if n.startswith("taskforce-")}
    return {"throughput": tput, "variant_over_deployed": variants, "cpu_per_1000": cpu, "cpu_components": comps, "targets": targets, "per_round": per_round}
