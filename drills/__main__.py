"""`python -m drills list | run NAME... | health | check HISTORY`

    python -m drills run leader-kill --inventory inventories/lab
    python -m drills run all --inventory inventories/lab --out reports/drills-now
    python -m drills run leader-kill gateway-kill --local            # a private dev cluster in /tmp/drills-dev
    python -m drills health --inventory inventories/lab              # the health gate alone: no load, no fault
    python -m drills check reports/drills-.../leader-kill/history.jsonl

Exit status: 0 when every drill that ran passed; 1 when any failed (a lost job, a broken
invariant) or errored; 2 when a drill was refused (unhealthy cluster, bad inventory).
A drill the back end cannot run (for example a partition on the one-host cluster) is listed
as unsupported and does not change the exit status.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m drills", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the catalogue, with what each back end can run")
    run = sub.add_parser("run", help="run drills (NAME..., `all`, or `ci`) and write a report")
    run.add_argument("names", nargs="+")
    where = run.add_mutually_exclusive_group(required=True)
    where.add_argument("--inventory", type=Path, help="an Ansible inventory directory (lab or real machines)")
    where.add_argument("--local", action="store_true", help="start a private one-host dev cluster")
    run.add_argument("--backend", choices=["lab", "ssh"], help="override what the inventory says it is")
    run.add_argument("--gateway", action="append", dest="gateways", metavar="URL",
                     help="gateway URL(s), overriding the inventory's (repeatable)")
    run.add_argument("--local-dir", type=Path, default=Path("/tmp/drills-dev"))
    run.add_argument("--java", choices=["auto", "yes", "no"], default="auto",
                     help="--local: a Java worker too (auto: when build/taskforce-worker.jar exists)")
    run.add_argument("--out", type=Path, help="report directory (default reports/drills-<timestamp>)")
    run.add_argument("--rate", type=float, default=10.0, help="submits per second (default 10)")
    run.add_argument("--mix", choices=["routed", "explicit", "common"], default="routed",
                     help="routed (default): language-only job types name no queue, so the gateway routes them "
                          "by capability; explicit: they name their language's queue; common: only types both "
                          "languages serve, on the default queue")
    run.add_argument("--hold", type=float, help="seconds each fault stays in force (default: per drill)")
    run.add_argument("--warmup", type=float, default=8.0)
    run.add_argument("--post", type=float, default=10.0, help="seconds of load after the last heal")
    run.add_argument("--settle", type=float, default=120.0, help="seconds for accepted jobs to finish after the load")
    run.add_argument("--recover", type=float, default=180.0, help="seconds for the cluster to be healthy after a heal")
    hl = sub.add_parser("health", help="only say whether the cluster is fit for a drill (no load, no fault)")
    hl.add_argument("--inventory", type=Path, required=True)
    hl.add_argument("--backend", choices=["lab", "ssh"])
    hl.add_argument("--gateway", action="append", dest="gateways", metavar="URL")
    chk = sub.add_parser("check", help="judge a recorded history again")
    chk.add_argument("history", type=Path)
    return ap


def cmd_list() -> int:
    from .catalogue import ordered
    from .targets.base import CRASH, PAUSE, STOP
    local = {CRASH, STOP, PAUSE}
    print(f"{'drill':26} {'local':6} {'ci':3} summary")
    for d in ordered():
        print(f"{d.name:26} {'yes' if d.needs <= local else 'no':6} {'yes' if d.ci else '':3} {d.summary}")
    return 0


def _names(names: list[str]) -> list[str]:
    from .catalogue import CATALOGUE, ORDER
    out: list[str] = []
    for n in names:
        if n == "all":
            out += ORDER
        elif n == "ci":
            out += [d for d in ORDER if CATALOGUE[d].ci]
        elif n in CATALOGUE:
            out.append(n)
        else:
            raise SystemExit(f"no drill named {n!r}; `python -m drills list` shows the catalogue")
    return list(dict.fromkeys(out))


def cmd_run(a) -> int:
    from . import report
    from .catalogue import CATALOGUE
    from .runner import RunParams, run_drill
    from .targets.base import Refused
    names = _names(a.names)
    out = a.out or REPO / "reports" / f"drills-{time.strftime('%Y%m%d-%H%M%S')}"
    params = RunParams(rate=a.rate, warmup_s=a.warmup, post_s=a.post, settle_s=a.settle, recover_s=a.recover,
                       hold_s=a.hold, mix=a.mix)
    target = None
    try:
        if a.local:
            from .targets.local import LocalTarget
            java = None if a.java == "auto" else a.java == "yes"
            target = LocalTarget(a.local_dir, java=java).up()
        else:
            from .targets.inventory import open_inventory
            target = open_inventory(a.inventory, a.backend, a.gateways)
    except Refused as e:
        print(f"drills: {e}", file=sys.stderr)
        if target is not None and hasattr(target, "down"):
            target.down()
        return 2
    print(f"target: {target.describe()}", flush=True)
    results = []
    try:
        for n in names:
            r = run_drill(CATALOGUE[n], target, params, out)
            results.append(r)
            if r.status == "refused" and "not healthy" in r.reason:
                # Do not wait the full minute again for each of the drills still to come.
                params.precheck_s = min(params.precheck_s, 5.0)
            report.write(results, out, target.describe(), CATALOGUE)   # a partial report survives a crash
    except KeyboardInterrupt:
        print("interrupted; writing what ran", file=sys.stderr)
    finally:
        if hasattr(target, "down"):
            target.down()
        else:
            target.close()
    path = report.write(results, out, target.describe(), CATALOGUE)
    print(f"\n{report.table(results)}\n\nreport: {path}")
    if any(r.status in ("failed", "error") for r in results):
        return 1
    if any(r.status == "refused" for r in results):
        return 2
    return 0


def cmd_health(a) -> int:
    from .targets.base import Refused
    from .targets.inventory import open_inventory
    try:
        t = open_inventory(a.inventory, a.backend, a.gateways)
    except Refused as e:
        print(f"drills: {e}", file=sys.stderr)
        return 2
    print(f"target: {t.describe()}")
    reasons = t.health()
    t.close()
    for r in reasons:
        print(f"  not healthy: {r}")
    print("healthy: a drill would start" if not reasons else "a drill would refuse to start")
    return 0 if not reasons else 2


def cmd_check(a) -> int:
    from .checker import check
    from .history import load
    v = check(load(a.history))
    print(json.dumps(v, indent=2, default=str))
    return 0 if v["ok"] else 1


def main(argv=None) -> int:
    a = _parser().parse_args(argv)
    if a.cmd == "list":
        return cmd_list()
    if a.cmd == "run":
        return cmd_run(a)
    if a.cmd == "health":
        return cmd_health(a)
    return cmd_check(a)


if __name__ == "__main__":
    sys.exit(main())
