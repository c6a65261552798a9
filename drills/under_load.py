"""An operation (a playbook, any command) run while the drills' workload loads the cluster,
judged by the same checker as the drills.

    python -m drills.under_load --inventory inventories/lab --out reports/upgrade-now -- \
        ansible-playbook -i inventories/lab playbooks/upgrade.yml

The operation is recorded as one fault on every node, from its start to its end: it restarts
services everywhere, so a redelivery anywhere inside its window is one it explains. The
verdict is the checker's; this module only adds what an operator asks of an operation: how
long it took, and the share of submits that were not answered 202 while it ran.

Exit status: 0 when the operation succeeded and the checker found nothing wrong (no lost job,
no broken invariant); 1 otherwise; 2 when the cluster was not healthy enough to start.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from drills.catalogue import Drill, default_mix  # noqa: E402
from drills.runner import Ctx, RunParams, run_drill  # noqa: E402
from drills.targets.base import Refused  # noqa: E402


def submit_error_rate(entries: list[dict], start: float, end: float) -> dict:
    """Submit tries inside [start, end] and how many were not answered 202 (told: an HTTP
    error such as 503; dropped: no answer at all). A rejected try (4xx) is the client's
    own fault and counts as an error too, so nothing is hidden."""
    tries = [e for e in entries if e.get("type") == "submit" and start <= e.get("t", 0) <= end]
    bad = [e for e in tries if e.get("outcome") != "accepted"]
    by = {}
    for e in bad:
        by[e["outcome"]] = by.get(e["outcome"], 0) + 1
    return {"tries": len(tries), "not_accepted": len(bad), "by_outcome": by,
            "rate": round(len(bad) / len(tries), 4) if tries else 0.0}


def operation_drill(name: str, argv: list[str], result: dict) -> Drill:
    def schedule(ctx: Ctx) -> None:
        t = ctx.target
        victims = [t.node_victim(n) for n in t.nodes()]

        def run() -> None:
            proc = subprocess.run(argv, cwd=REPO)
            result["end"] = time.time()
            result["rc"] = proc.returncode

        # The fault is recorded when its action returns, so the action only starts the
        # operation: the fault's window is then the operation's, from start to end.
        op = threading.Thread(target=run, name="operation")

        def start() -> None:
            result["start"] = time.time()
            op.start()

        fid = ctx.inject(f"operation: {' '.join(argv)}", victims, start)
        op.join()
        # The operation may have added or removed machines: the health checks that follow ask
        # for the cluster the inventory now describes. The workload's client keeps the gateways
        # it started with, as a client configured before the change would.
        reload = getattr(t, "reload", None)
        if reload is not None:
            reload()
        ctx.check("the operation exited 0", result.get("rc") == 0, f"exit status {result.get('rc')}")
        ctx.heal(fid, label="operation done")

    return Drill(name, f"the workload runs while `{' '.join(argv)}` runs", frozenset(), schedule, default_mix)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m drills.under_load", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inventory", type=Path, required=True)
    ap.add_argument("--name", default="under-load", help="the name in the report (default under-load)")
    ap.add_argument("--out", type=Path, help="report directory (default reports/<name>-<timestamp>)")
    ap.add_argument("--rate", type=float, default=10.0, help="submits per second (default 10)")
    ap.add_argument("--warmup", type=float, default=8.0)
    ap.add_argument("--post", type=float, default=10.0)
    ap.add_argument("--settle", type=float, default=180.0)
    ap.add_argument("--recover", type=float, default=180.0)
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- then the operation's command line")
    a = ap.parse_args(argv)
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("give the operation after --")

    from drills.targets.inventory import open_inventory
    try:
        target = open_inventory(a.inventory, None, None)
    except Refused as e:
        print(f"under_load: {e}", file=sys.stderr)
        return 2
    out = a.out or REPO / "reports" / f"{a.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    params = RunParams(rate=a.rate, warmup_s=a.warmup, post_s=a.post, settle_s=a.settle, recover_s=a.recover)
    op: dict = {}
    try:
        res = run_drill(operation_drill(a.name, cmd, op), target, params, out)
    finally:
        target.close()
    if res.status == "refused":
        print(f"refused: {res.reason}", file=sys.stderr)
        return 2
    from drills.history import load
    entries = load(Path(res.history_file))
    c = res.verdict["counts"]
    summary = {
        "operation": cmd, "exit_status": op.get("rc"),
        "duration_s": round(op["end"] - op["start"], 1) if "end" in op else None,
        "submits_during_operation": submit_error_rate(entries, op.get("start", 0), op.get("end", 0)),
        "submits_whole_run": submit_error_rate(entries, 0, float("inf")),
        "accepted": c["accepted"], "completed": c["completed"], "lost": c["lost"], "dead": c["dead"],
        "stuck": c["stuck"], "duplicates_unexplained": c["duplicates_unexplained"],
        "checker_ok": res.verdict["ok"], "status": res.status, "history": res.history_file,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    ok = res.status == "passed" and op.get("rc") == 0 and c["lost"] == 0 and c["dead"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
