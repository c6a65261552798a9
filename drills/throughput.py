"""Job throughput (no-op by default) on a cluster named by an inventory, measured before and after each of
a list of operations, in one run: the horizontal-scaling evidence.

    python -m drills.throughput --inventory inventories/lab --jobs 2000 \
        --step "make lab-scale-out SCALE_NODE=worker3" --step "make lab-scale-in SCALE_NODE=worker3"

Each measurement submits `--jobs` no-op jobs in batches of 500, spread over the gateways, and
follows the events stream of the first gateway until every one of them has succeeded. The
throughput is jobs / (the last job's finished_at - the first batch's submit time): the
cluster's own clock for the end, the client's for the start. The workers' count comes from
the registry at the time of the measurement. Each step is a shell command, timed.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import httpx

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from drills.targets.inventory import open_inventory  # noqa: E402

BATCH = 500


def parse_sse(lines):
    """(event name, data dict) for each event in an iterator of SSE lines."""
    name, data = "message", []
    for line in lines:
        if line == "":
            if data:
                try:
                    yield name, json.loads("\n".join(data))
                except ValueError:
                    pass
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def event_job_id(ev: dict):
    rec = ev.get("record") or {}
    return rec.get("id") or ev.get("job_id"), rec


def measure(inventory: Path, n: int, timeout: float, job_type: str = "noop", payload: Optional[dict] = None) -> dict:
    t = open_inventory(inventory, None, None)
    try:
        gws = [g.address for g in t.of("gateway")]
        workers = [w for w in t.workers_alive()]
        nodes = sorted({w.get("node") for w in workers})
        headers = {"Authorization": f"Bearer {t.token}"}
        done: dict[str, float] = {}
        ids: set[str] = set()
        stream_ready = threading.Event()
        stop = threading.Event()

        def follow() -> None:
            with httpx.Client(headers=headers, timeout=httpx.Timeout(10, read=None)) as c:
                with c.stream("GET", gws[0] + "/v1/events", params={"status": "succeeded", "type": job_type}) as r:
                    stream_ready.set()
                    for name, ev in parse_sse(r.iter_lines()):
                        jid, rec = event_job_id(ev)
                        if name == "job" and jid:
                            done.setdefault(jid, rec.get("finished_at") or time.time())
                        if stop.is_set():
                            return

        th = threading.Thread(target=follow, daemon=True)
        th.start()
        stream_ready.wait(10)
        time.sleep(0.5)
        t0 = time.time()
        with httpx.Client(headers=headers, timeout=60) as c:
            for i, start in enumerate(range(0, n, BATCH)):
                job = {"type": job_type, "payload": payload or {}, "max_attempts": 3}
                body = {"jobs": [job] * min(BATCH, n - start)}
                r = c.post(gws[i % len(gws)] + "/v1/jobs/batch", json=body)
                r.raise_for_status()
                ids |= {x["id"] for x in r.json()["results"] if x["status"] == 202}
            t_submitted = time.time()
            end = t0 + timeout
            while time.time() < end and not ids <= done.keys():
                time.sleep(0.5)
            # Anything the stream missed (a reconnect, say) is read back one by one.
            for jid in ids - done.keys():
                r = c.get(gws[0] + f"/v1/jobs/{jid}")
                if r.status_code == 200 and r.json().get("status") == "succeeded":
                    done[jid] = r.json().get("finished_at") or time.time()
        stop.set()
        ours = [done[j] for j in ids if j in done]
        last = max(ours) if ours else time.time()
        return {"type": job_type, "jobs": n, "accepted": len(ids), "succeeded": len(ours),
                "worker_nodes": len(nodes), "worker_processes": len(workers), "nodes": nodes,
                "submit_s": round(t_submitted - t0, 2), "elapsed_s": round(last - t0, 2),
                "throughput_per_s": round(len(ours) / (last - t0), 1) if ours else 0.0}
    finally:
        t.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m drills.throughput", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inventory", type=Path, required=True)
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--type", default="noop", help="job type (default noop); e.g. sleep, for worker-bound jobs")
    ap.add_argument("--payload", type=json.loads, default=None, help='the jobs\' payload as JSON, e.g. \'{"seconds": 0.1}\'')
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds for one measurement's jobs to finish")
    ap.add_argument("--step", action="append", default=[], help="a shell command to run, then measure again")
    ap.add_argument("--out", type=Path, help="write the results here as JSON")
    a = ap.parse_args(argv)
    out = {"measurements": [], "steps": []}

    def record(label: str) -> None:
        m = measure(a.inventory, a.jobs, a.timeout, a.type, a.payload)
        m["after"] = label
        out["measurements"].append(m)
        print(json.dumps(m), flush=True)

    record("start")
    ok = True
    for cmd in a.step:
        t0 = time.time()
        rc = subprocess.run(cmd, shell=True, cwd=REPO).returncode
        s = {"command": cmd, "exit_status": rc, "duration_s": round(time.time() - t0, 1)}
        out["steps"].append(s)
        print(json.dumps(s), flush=True)
        if rc != 0:
            ok = False
            break
        record(cmd)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(out, indent=2))
    lost = [m for m in out["measurements"] if m["succeeded"] != m["accepted"] or m["accepted"] != m["jobs"]]
    return 0 if ok and not lost else 1


if __name__ == "__main__":
    sys.exit(main())
