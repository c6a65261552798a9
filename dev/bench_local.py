"""`make bench-local`: no-op job throughput and submit->start latency on the one-host cluster,
beside the raw ceiling of the same broker measured in the same run.

The raw ceiling is what pika alone gets: publish-with-confirm (pipelined in batches, as a
careful publisher would) then consume-and-ack, of messages the size of a job message, on one
quorum queue. Ratios, not absolute numbers, are what to compare across machines.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import pika

from dev.cluster import DevCluster, say
from taskforce.amqp.confirms import ConfirmBatch
from taskforce.amqp.connection import props


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def raw_ceiling(c: DevCluster, n: int, size: int) -> dict:
    creds = pika.PlainCredentials("admin", c.rabbit.passwords["admin"])
    params = pika.ConnectionParameters("127.0.0.1", c.amqp_port, "taskforce", creds)
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    q = "bench.raw"
    ch.queue_delete(q)
    ch.queue_declare(q, durable=True, arguments={"x-queue-type": "quorum"})
    body = json.dumps({"v": 1, "id": "x" * 32, "type": "noop", "payload": {}, "pad": "p" * max(0, size - 80)}).encode()
    pub = ConfirmBatch(conn)
    t0 = time.perf_counter()
    for i in range(n):
        pub.publish("", q, body, props())
        if pub.outstanding >= 200:
            pub.wait()
    pub.wait()
    t_pub = time.perf_counter() - t0
    got = 0
    ch.basic_qos(prefetch_count=200)
    t1 = time.perf_counter()
    for m, _, _ in ch.consume(q, inactivity_timeout=5):
        if m is None:
            break
        got += 1
        if got % 50 == 0 or got == n:
            ch.basic_ack(m.delivery_tag, multiple=True)
        if got == n:
            break
    ch.cancel()
    t_con = time.perf_counter() - t1
    ch.queue_delete(q)
    conn.close()
    total = t_pub + t_con
    return {"messages": n, "bytes": len(body), "publish_per_s": n / t_pub, "consume_per_s": got / t_con,
            "end_to_end_per_s": n / total}


def taskforce_run(c: DevCluster, n: int) -> dict:
    ids: list[str] = []
    t0 = time.time()
    with c.client() as cl:
        for start in range(0, n, 500):
            r = cl.post("/v1/jobs/batch", json={"jobs": [{"type": "noop"}] * min(500, n - start)})
            r.raise_for_status()
            ids += [x["id"] for x in r.json()["results"] if x["status"] == 202]
    t_submit = time.time() - t0
    done = c.wait_terminal(ids, timeout=600)
    elapsed = max(r["finished_at"] for r in done.values()) - t0
    lat = [r["attempts"][0]["started_at"] - r["submitted_at"] for r in done.values() if r["attempts"]]
    return {"jobs": n, "succeeded": sum(r["status"] == "succeeded" for r in done.values()),
            "submit_per_s": n / t_submit, "throughput_per_s": n / elapsed,
            "submit_to_start_p50_ms": 1000 * statistics.median(lat), "submit_to_start_p99_ms": 1000 * pct(lat, 99)}


def paced_latency(c: DevCluster, rate: float, seconds: float) -> dict:
    """Latency at a steady, moderate rate: the backlog does not inflate it."""
    ids = []
    with c.client() as cl:
        t_end = time.time() + seconds
        while time.time() < t_end:
            r = cl.post("/v1/jobs", json={"type": "noop"})
            if r.status_code == 202:
                ids.append(r.json()["id"])
            time.sleep(1 / rate)
    done = c.wait_terminal(ids, timeout=120)
    lat = [r["attempts"][0]["started_at"] - r["submitted_at"] for r in done.values() if r["attempts"]]
    done_lat = [r["finished_at"] - r["submitted_at"] for r in done.values()]
    return {"rate_per_s": rate, "jobs": len(ids), "submit_to_start_p50_ms": 1000 * statistics.median(lat),
            "submit_to_start_p99_ms": 1000 * pct(lat, 99), "submit_to_done_p50_ms": 1000 * statistics.median(done_lat),
            "submit_to_done_p99_ms": 1000 * pct(done_lat, 99)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=3000)
    ap.add_argument("--dir", default="/tmp/taskforce-bench")
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args()
    c = DevCluster(Path(a.dir))
    try:
        c.up()
        say("warm-up")
        taskforce_run(c, 300)
        say(f"raw ceiling: {a.jobs} messages")
        raw = raw_ceiling(c, a.jobs, 300)
        say(f"taskforce: {a.jobs} no-op jobs")
        tf = taskforce_run(c, a.jobs)
        say("raw ceiling again (interleaved, the machine is noisy)")
        raw2 = raw_ceiling(c, a.jobs, 300)
        rate = max(5.0, tf["throughput_per_s"] / 2)
        say(f"latency at half of the measured rate ({rate:.0f} jobs/s, 20 s)")
        lat = paced_latency(c, rate, 20)
    finally:
        c.down()
    ceiling = (raw["end_to_end_per_s"] + raw2["end_to_end_per_s"]) / 2
    out = {"raw": [raw, raw2], "taskforce": tf, "half_load": lat,
           "ratio_taskforce_to_raw": tf["throughput_per_s"] / ceiling}
    print()
    print(f"raw ceiling (publish-confirm then consume-ack, quorum queue): {ceiling:8.0f} msg/s "
          f"(runs: {raw['end_to_end_per_s']:.0f}, {raw2['end_to_end_per_s']:.0f})")
    print(f"taskforce no-op jobs, end to end:                             {tf['throughput_per_s']:8.0f} jobs/s "
          f"({tf['succeeded']}/{tf['jobs']} succeeded)")
    print(f"ratio taskforce / raw:                                        {out['ratio_taskforce_to_raw']:8.2f}")
    print(f"submit->start under backlog: p50 {tf['submit_to_start_p50_ms']:.0f} ms, p99 {tf['submit_to_start_p99_ms']:.0f} ms")
    print(f"at {lat['rate_per_s']:.0f} jobs/s: submit->start p50 {lat['submit_to_start_p50_ms']:.0f} ms, "
          f"p99 {lat['submit_to_start_p99_ms']:.0f} ms; submit->done p50 {lat['submit_to_done_p50_ms']:.0f} ms, "
          f"p99 {lat['submit_to_done_p99_ms']:.0f} ms")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
