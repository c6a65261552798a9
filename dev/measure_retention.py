"""Memory of the replicated schedule with many retained finished jobs, and the effect of
compaction: drives Schedule directly (the state the orchestrator holds and snapshots)."""
from __future__ import annotations

import argparse
import gc
import pickle
import resource
import sys
import time

from taskforce.orchestrator.schedule import Schedule


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def run(n: int, max_retained: int) -> dict:
    gc.collect()
    base = rss_mb()
    s = Schedule(retention_s=1e9, max_retained=max_retained)
    s.begin_epoch(1, "o1")
    now = 1000.0
    batch = 500
    for start in range(0, n, batch):
        cmds = [{"kind": "submit", "job": {"id": f"{i:032x}", "type": "noop", "payload": {}, "queue": "default",
                                           "priority": 5, "max_attempts": 3, "timeout_s": 60.0,
                                           "submitted_at": now}} for i in range(start, min(n, start + batch))]
        evs = []
        for c in cmds:
            e = {"job_id": c["job"]["id"], "attempt": 1, "generation": 0, "worker_id": "w1", "node": "n1",
                 "lang": "python", "ts": now}
            evs += [dict(e, kind="started"), dict(e, kind="succeeded", result={})]
        s.apply(1, now, cmds, evs)
        s.outbox_ack(1, s.seq)
        s.tick(1, now, [])
        now += 0.01
    gc.collect()
    t0 = time.perf_counter()
    snap = pickle.dumps(s)
    return {"jobs_submitted": n, "retained": len(s.jobs), "rss_mb": rss_mb() - base,
            "snapshot_mb": len(snap) / 2**20, "snapshot_s": time.perf_counter() - t0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--max-retained", type=int, default=100_000)
    a = ap.parse_args()
    r = run(a.jobs, a.max_retained)
    print(f"{r['jobs_submitted']} finished jobs, {r['retained']} retained: +{r['rss_mb']:.0f} MiB RSS, "
          f"snapshot {r['snapshot_mb']:.1f} MiB in {r['snapshot_s']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
