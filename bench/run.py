"""`make bench`: raw ceiling, TaskForce and Celery on the same lab cluster, in one invocation.

Order: prepare (the bench vhost and user with a fresh password, Celery and pika on the worker
nodes, TaskForce's workers stopped there); throughput rounds, interleaved (raw, taskforce,
celery, then the reverse order, ...); latency of each at half its own measured rate; the
TaskForce scaling curve (1, 2, 3 worker processes); the gateway's memory under open SSE
streams. py-spy samples the Raft leader and a gateway during the first TaskForce round.
Whatever happens, the worker nodes get back the TaskForce workers that ran there before,
and no benchmark process is left running.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import Optional

import httpx

from . import profile, sse
from .driver import paced, saturate
from .lab import Lab, environ_with_nofile, say
from .report import write
from .stats import cpu_delta, cpu_per_1000, group_cpu, latencies, throughput
from .summary import summarise
from .systems import System
from .systems import nodes as node_setup
from .systems.celery import CelerySystem
from .systems.raw import Raw
from .systems.taskforce import TaskForce, install_variant

REPO = Path(__file__).resolve().parents[1]


def own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def spread(processes: int, workers: list[str]) -> dict[str, int]:
    """n processes over the worker nodes, round robin: 3 over two nodes is {w1: 2, w2: 1}."""
    plan: dict[str, int] = {}
    for i in range(processes):
        w = workers[i % len(workers)]
        plan[w] = plan.get(w, 0) + 1
    return plan


def mine(stamps: dict, submitted: dict) -> dict:
    """Only the jobs this phase submitted (a stream may also carry an earlier phase's)."""
    return {k: v for k, v in stamps.items() if k in submitted}


def leader_node(lab: Lab) -> Optional[str]:
    r = httpx.get(f"{lab.gateway_urls()[0]}/v1/cluster", headers={"Authorization": f"Bearer {lab.token}"}, timeout=10)
    leader = str(r.json().get("raft", {}).get("leader") or "")
    host = leader.rsplit(":", 1)[0]
    return next((n for n in lab.inv.groups.get("orchestrators", []) if host in (n, lab.address(n))), None)


def throughput_round(lab: Lab, sys_: System, plan: dict[str, int], a, tag: str,
                     profile_dir: Optional[Path] = None) -> dict:
    say(f"{sys_.name}: throughput, consumers {plan}, {a.warmup:.0f} s warm-up + {a.duration:.0f} s")
    sys_.setup()
    sys_.begin(tag)   # before the consumers: they are told where to record completions
    sys_.start_consumers(plan)
    try:
        cpu_plan = sys_.cpu_plan()
        edges: dict[str, tuple[dict, float]] = {}
        spies: dict = {}

        def at(edge: str) -> None:
            edges[edge] = (lab.cpu(cpu_plan), own_cpu())
            if edge == "from" and profile_dir is not None:
                profile_dir.mkdir(parents=True, exist_ok=True)
                leader = leader_node(lab)
                for who, node, unit in (("leader", leader, "taskforce-orchestrator.service"),
                                        ("gateway", lab.gateways[0], "taskforce-gateway.service")):
                    if node:
                        out = profile_dir / f"{who}-{node}.txt"
                        spies[f"{who} ({node})"] = (profile.start(lab, node, unit, a.duration, out), out)

        load = saturate(sys_, a.warmup, a.duration, a.window, at)
        stamps = mine(sys_.stamps(), load.submitted)
    finally:
        sys_.stop_consumers()
    done = [d for _, d in stamps.values()]
    jps = throughput(done, load.t_from, load.t_to)
    in_window = sum(1 for d in done if load.t_from <= d < load.t_to)
    cpu = group_cpu(cpu_delta(edges["from"][0], edges["to"][0]))
    cpu["controller"] = edges["to"][1] - edges["from"][1]
    out = {"tag": tag, "plan": plan, "jobs_per_s": round(jps, 1), "window_s": round(load.t_to - load.t_from, 2),
           "completed_in_window": in_window, "submitted": len(load.submitted), "completed": len(stamps),
           "submit_errors": load.errors, "drained": load.drained,
           "cpu_s": {k: round(v, 3) for k, v in cpu.items()}, "cpu_per_1000": cpu_per_1000(cpu, in_window),
           "latency_under_saturation": latencies(load.submitted, stamps)}
    if spies:
        out["profile"] = {who: profile.finish(p, f, a.duration) for who, (p, f) in spies.items()}
    say(f"{sys_.name}: {jps:.0f} jobs/s ({in_window} in {load.t_to - load.t_from:.1f} s), "
        f"CPU {out['cpu_per_1000'].get('total')} s per 1,000 jobs")
    return out


def latency_run(lab: Lab, sys_: System, plan: dict[str, int], rate: float, seconds: float, tag: str) -> dict:
    say(f"{sys_.name}: latency at {rate:.0f} jobs/s (half its measured rate) for {seconds:.0f} s")
    sys_.setup()
    sys_.begin(tag)
    sys_.start_consumers(plan)
    try:
        load = paced(sys_, rate, seconds)
        stamps = mine(sys_.stamps(), load.submitted)
    finally:
        sys_.stop_consumers()
    out = {"rate_per_s": round(rate, 1), "seconds": seconds, "submit_errors": load.errors, **latencies(load.submitted, stamps)}
    say(f"{sys_.name}: submit→start p50 {out['submit_to_start_p50_ms']} ms p99 {out['submit_to_start_p99_ms']} ms; "
        f"submit→done p50 {out['submit_to_done_p50_ms']} ms p99 {out['submit_to_done_p99_ms']} ms")
    return out


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inventory", type=Path, default=REPO / "inventories/lab")
    ap.add_argument("--out", type=Path, default=REPO / f"reports/bench-{time.strftime('%Y%m%d-%H%M%S')}")
    ap.add_argument("--duration", type=float, default=30.0, help="measured seconds per throughput run (default 30)")
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--latency-duration", type=float, default=None, help="seconds of paced load (default: --duration)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved throughput rounds per system")
    ap.add_argument("--window", type=int, default=1000, help="jobs in flight under saturation")
    ap.add_argument("--systems", default="raw,taskforce,celery")
    ap.add_argument("--slots", type=int, default=4, help="TaskForce slots per worker process (the inventory's); "
                    "Celery gets as many pool processes")
    ap.add_argument("--raw-prefetch", type=int, default=8)
    ap.add_argument("--sse-streams", type=int, default=1000, help="0 skips the gateway memory measurement")
    ap.add_argument("--no-scaling", action="store_true")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--wheels", type=Path, default=REPO / "build/bench-wheels")
    ap.add_argument("--variant-wheel", type=Path, help="a taskforce wheel built from another tree: its worker runs "
                    "as a fourth system, interleaved with the deployed one (before/after in one run)")
    ap.add_argument("--variant-label", default="variant")
    a = ap.parse_args(argv)
    a.latency_duration = a.latency_duration or a.duration
    names = [s.strip() for s in a.systems.split(",") if s.strip()]
    environ_with_nofile(4 * max(1000, a.sse_streams))
    # A stopped run still restores the worker nodes (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    lab = Lab(a.inventory)
    say(f"lab: cores {lab.cores}, workers {lab.workers}; report in {a.out}")
    before = {w: lab.active_units(w, "'taskforce-worker*'") for w in lab.workers}
    say(f"TaskForce workers running now: {before}")
    password = lab.ensure_bench_vhost()
    node_setup.prepare(lab, a.wheels)
    systems: dict[str, System] = {}
    if "raw" in names:
        systems["raw"] = Raw(lab, password, a.raw_prefetch)
    if "taskforce" in names:
        systems["taskforce"] = TaskForce(lab)
    if a.variant_wheel:
        install_variant(lab, a.variant_wheel)
        v = TaskForce(lab, a.variant_label)
        systems[v.name] = v
    if "celery" in names:
        systems["celery"] = CelerySystem(lab, password, a.slots)
    equal = {w: 1 for w in lab.workers}
    res: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                 "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
                 "cluster": {"cores": len(lab.cores), "workers": len(lab.workers), "processes_per_node": 1,
                             "slots": a.slots, "raw_prefetch": a.raw_prefetch},
                 "throughput": {n: [] for n in systems}, "latency": {}, "scaling": [], "memory": None, "profile": {}}
    try:
        for w in lab.workers:   # equal footing: each system alone on the worker nodes
            lab.systemctl(w, "stop", before[w])
        for r in range(a.rounds):
            order = list(systems) if r % 2 == 0 else list(reversed(systems))
            for n in order:
                prof = (a.out / "profiles" / n) if (n.startswith("taskforce") and r == 0 and not a.no_profile) else None
                try:
                    rnd = throughput_round(lab, systems[n], equal, a, f"{n}-t{r + 1}", prof)
                except Exception as e:   # one failed round must not cost the others
                    say(f"{n}: round {r + 1} FAILED: {e!r}")
                    res.setdefault("errors", []).append(f"{n} round {r + 1}: {e!r}")
                    continue
                res["profile"].update({f"{k} [{n}]": v for k, v in (rnd.pop("profile", {}) or {}).items()})
                res["throughput"][n].append(rnd)
        for n, s in systems.items():
            if not res["throughput"][n]:
                continue
            rate = 0.5 * sum(x["jobs_per_s"] for x in res["throughput"][n]) / len(res["throughput"][n])
            try:
                res["latency"][n] = latency_run(lab, s, equal, max(1.0, rate), a.latency_duration, f"{n}-lat")
            except Exception as e:
                say(f"{n}: latency run FAILED: {e!r}")
                res.setdefault("errors", []).append(f"{n} latency: {e!r}")
        if "taskforce" in systems and not a.no_scaling:
            for p in (1, 2, 3):
                plan = spread(p, lab.workers)
                try:
                    rnd = throughput_round(lab, systems["taskforce"], plan, a, f"taskforce-scale{p}")
                except Exception as e:
                    say(f"taskforce: scaling with {p} processes FAILED: {e!r}")
                    res.setdefault("errors", []).append(f"scaling {p}: {e!r}")
                    continue
                res["scaling"].append({"processes": p, "placement": ", ".join(f"{k}×{v}" for k, v in plan.items()),
                                       "jobs_per_s": rnd["jobs_per_s"], "cpu_per_1000": rnd["cpu_per_1000"]})
        if a.sse_streams and "taskforce" in systems:
            systems["taskforce"].start_consumers(equal)
            try:
                res["memory"] = sse.measure(lab, a.sse_streams)
            finally:
                systems["taskforce"].stop_consumers()
    finally:
        restore(lab, before)
        for s in systems.values():
            try:
                s.teardown()
            except Exception as e:
                say(f"{s.name}: teardown: {e!r}")
        res["summary"] = summarise(res)
        write(res, a.out)
        lab.close()
    say(f"report: {a.out / 'report.md'}")
    print((a.out / "report.md").read_text())
    return 0


def restore(lab: Lab, before: dict[str, list[str]]) -> None:
    """The worker nodes as they were: no benchmark unit left, the same TaskForce workers running."""
    for w in lab.workers:
        try:
            lab.run(w, "systemctl stop 'tfbench-*' 2>/dev/null; systemctl reset-failed 'tfbench-*' 2>/dev/null; true", check=False)
            extra = [u for u in lab.active_units(w, "'taskforce-worker*'") if u not in before[w]]
            lab.systemctl(w, "stop", extra)
            lab.systemctl(w, "start", before[w])
            say(f"{w}: restored {before[w]}" + (f", stopped {extra}" if extra else ""))
        except Exception as e:
            say(f"{w}: RESTORE FAILED ({e!r}); start {before[w]} by hand")
