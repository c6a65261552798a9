"""results.json, report.md and the plots of one `make bench` run."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

SYSTEMS = ("raw", "taskforce", "celery")
LABELS = {"raw": "raw ceiling (pika, quorum queue)", "taskforce": "TaskForce (gateway → Raft → worker)",
          "celery": "Celery (quorum, acks_late, confirms)"}


def _systems(res: dict) -> list[str]:
    """The three systems first, then any TaskForce variant measured beside them."""
    return [n for n in SYSTEMS if n in res["throughput"]] + sorted(n for n in res["throughput"] if n not in SYSTEMS)


def _f(v: Optional[float], nd: int = 0) -> str:
    return "–" if v is None else f"{v:,.{nd}f}"


def markdown(res: dict) -> str:
    s = res["summary"]
    lines = [f"# Benchmark {res['started']}", "",
             f"Cluster: {res['cluster']['cores']} core nodes (RabbitMQ, orchestrator, gateway), "
             f"{res['cluster']['workers']} worker nodes; {res['cluster']['processes_per_node']} worker process per node, "
             f"{res['cluster']['slots']} slots (Celery: prefork concurrency {res['cluster']['slots']}; raw: one consumer, "
             f"prefetch {res['cluster']['raw_prefetch']}).",
             f"Throughput: closed loop, {res['args']['window']} jobs in flight, {res['args']['warmup']:.0f} s warm-up, "
             f"{res['args']['duration']:.0f} s measured, {res['args']['rounds']} interleaved round(s). "
             f"Latency: paced at 50 % of each system's own measured rate for {res['args']['latency_duration']:.0f} s.",
             "", "## Results", "",
             "| system | jobs/s (mean of rounds) | rounds | half-load rate | submit→start p50 / p99 ms | submit→done p50 / p99 ms | CPU s / 1,000 jobs |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for name in _systems(res):
        lat = res["latency"].get(name) or {}
        rounds = ", ".join(_f(r["jobs_per_s"]) for r in res["throughput"][name])
        cpu = s["cpu_per_1000"].get(name, {}).get("total")
        lines.append(f"| {LABELS.get(name, name + ' (worker from another tree)')} | **{_f(s['throughput'].get(name))}** | {rounds} | {_f(lat.get('rate_per_s'))} | "
                     f"{_f(lat.get('submit_to_start_p50_ms'), 1)} / {_f(lat.get('submit_to_start_p99_ms'), 1)} | "
                     f"{_f(lat.get('submit_to_done_p50_ms'), 1)} / {_f(lat.get('submit_to_done_p99_ms'), 1)} | {_f(cpu, 2)} |")
    lines += ["", "## Ratios and targets", "", "| measure | value | target | met |", "|---|---:|---:|---|"]
    for t in s["targets"]:
        lines.append(f"| {t['name']} | {_f(t['value'], 2)} | {t['op']} {t['target']} | {'yes' if t['met'] else 'no'} |")
    for n, v in (s.get("variant_over_deployed") or {}).items():
        lines += ["", f"Before/after in this run: {n} / taskforce throughput = **{_f(v, 2)}** (mean of interleaved rounds)."]
    if s.get("per_round"):
        cols = _systems(res)
        lines += ["", "## Rounds (interleaved; ratios within a round)", "",
                  "| round | " + " | ".join(cols) + " | TaskForce / Celery | TaskForce / raw |",
                  "|---:|" + "---:|" * (len(cols) + 2)]
        for r in s["per_round"]:
            lines.append(f"| {r['round']} | " + " | ".join(_f(r.get(c)) for c in cols) +
                         f" | {_f(r.get('tf_over_celery'), 2)} | {_f(r.get('tf_over_raw'), 2)} |")
    lines += ["", "## CPU seconds per 1,000 jobs, by component", "", "| system | " + " | ".join(s["cpu_components"]) + " | total |",
              "|---|" + "---:|" * (len(s["cpu_components"]) + 1)]
    for name in _systems(res):
        c = s["cpu_per_1000"].get(name)
        if c:
            lines.append(f"| {name} | " + " | ".join(_f(c.get(k), 2) for k in s["cpu_components"]) + f" | {_f(c.get('total'), 2)} |")
    if res.get("scaling"):
        lines += ["", "## TaskForce scaling (worker processes, 4 slots each)", "", "| processes | placement | jobs/s |", "|---:|---|---:|"]
        for p in res["scaling"]:
            lines.append(f"| {p['processes']} | {p['placement']} | {_f(p['jobs_per_s'])} |")
    m = res.get("memory")
    if m:
        lines += ["", "## Gateway memory under open SSE streams", "",
                  f"{m.get('opened')} of {m['streams']} streams opened on {m['node']}; {m['jobs_during']} jobs' events fanned out "
                  f"({m.get('frames_received')} frames received).", "",
                  "| RSS before | with streams | after close | per stream |", "|---:|---:|---:|---:|",
                  f"| {_f((m.get('rss_before_kib') or 0) / 1024, 1)} MiB | {_f((m.get('rss_with_streams_kib') or 0) / 1024, 1)} MiB | "
                  f"{_f((m.get('rss_after_kib') or 0) / 1024, 1)} MiB | {_f(m.get('per_stream_kib'), 1)} KiB |"]
    for who, prof in (res.get("profile") or {}).items():
        if not prof:
            continue
        lines += ["", f"## Profile: {who} under saturation (py-spy, {prof['samples']} samples holding the GIL at 100 Hz: "
                  f"the GIL held {prof['busy_pct_of_one_core']} % of the time)", "",
                  "| inclusive | % of samples | self | % of samples |", "|---|---:|---|---:|"]
        for a, b in zip(prof["top_inclusive"], prof["top_self"]):
            lines.append(f"| `{a[0]}` | {a[1]} | `{b[0]}` | {b[1]} |")
    for e in res.get("errors") or []:
        lines.append(f"- failed: {e}")
    lines += ["", "Plots: throughput.png, latency.png, cpu.png, scaling.png. Figures: results.json.", ""]
    return "\n".join(lines)


def plots(res: dict, out: Path) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    made = []
    names = _systems(res)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(names, [res["summary"]["throughput"].get(n) or 0 for n in names], color=["#999", "#2a7", "#37c", "#c73", "#a4a"][:len(names)])
    for i, n in enumerate(names):
        ax.scatter([i] * len(res["throughput"][n]), [r["jobs_per_s"] for r in res["throughput"][n]], color="k", s=12, zorder=3)
    ax.set_ylabel("jobs/s (bars: mean; dots: rounds)")
    ax.set_title("Sustained throughput, same lab cluster")
    fig.tight_layout(); fig.savefig(out / "throughput.png", dpi=110); plt.close(fig); made.append("throughput.png")

    fig, ax = plt.subplots(figsize=(7, 3.5))
    keys = ["submit_to_start_p50_ms", "submit_to_start_p99_ms", "submit_to_done_p50_ms", "submit_to_done_p99_ms"]
    w = 0.8 / max(1, len(names))
    for i, n in enumerate(names):
        lat = res["latency"].get(n) or {}
        ax.bar([k + i * w for k in range(len(keys))], [lat.get(k) or 0 for k in keys], w, label=n)
    ax.set_xticks([k + w * (len(names) - 1) / 2 for k in range(len(keys))])
    ax.set_xticklabels(["start p50", "start p99", "done p50", "done p99"])
    ax.axhline(50, color="r", lw=0.8, ls="--")
    ax.set_yscale("log"); ax.set_ylabel("ms (log)"); ax.set_title("Latency at 50 % of each system's max rate"); ax.legend()
    fig.tight_layout(); fig.savefig(out / "latency.png", dpi=110); plt.close(fig); made.append("latency.png")

    comps = res["summary"]["cpu_components"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bottom = [0.0] * len(names)
    for c in comps:
        vals = [(res["summary"]["cpu_per_1000"].get(n) or {}).get(c) or 0 for n in names]
        ax.bar(names, vals, bottom=bottom, label=c)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("CPU s per 1,000 jobs"); ax.set_title("CPU cost by component"); ax.legend(fontsize=8)
    fig.tight_layout(); fig.savefig(out / "cpu.png", dpi=110); plt.close(fig); made.append("cpu.png")

    if res.get("scaling"):
        fig, ax = plt.subplots(figsize=(5, 3.5))
        xs = [p["processes"] for p in res["scaling"]]
        ax.plot(xs, [p["jobs_per_s"] for p in res["scaling"]], "o-", color="#2a7")
        ax.set_xticks(xs); ax.set_xlabel("Python worker processes (4 slots each)"); ax.set_ylabel("jobs/s")
        ax.set_ylim(bottom=0); ax.set_title("TaskForce scaling")
        fig.tight_layout(); fig.savefig(out / "scaling.png", dpi=110); plt.close(fig); made.append("scaling.png")
    return made


def write(res: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=2, default=_json))
    try:
        res["plots"] = plots(res, out)
    except Exception as e:   # a plot must not cost the figures
        res["plots_error"] = repr(e)
    (out / "report.md").write_text(markdown(res))


def _json(o: Any) -> Any:
    return str(o)
