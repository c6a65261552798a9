"""The raw ceiling's consumer: consume and ack job-sized messages from a quorum queue, and
record when each arrived. Runs on a worker node under `systemd-run`; reads BENCH_* variables.

A line per message, `id t_submit t_start t_done`, goes to BENCH_LOG (appended in batches;
the benchmark counts lines to know how many completed)."""
from __future__ import annotations

import json
import os
import random
import time

import pika


def main() -> None:
    hosts = os.environ["BENCH_AMQP_HOSTS"].split(",")
    random.shuffle(hosts)
    creds = pika.PlainCredentials(os.environ["BENCH_USER"], os.environ["BENCH_PASSWORD"])
    params = [pika.ConnectionParameters(h, 5672, os.environ["BENCH_VHOST"], creds, heartbeat=10) for h in hosts]
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.basic_qos(prefetch_count=int(os.environ.get("BENCH_PREFETCH", "8")))
    fd = os.open(os.environ["BENCH_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    lines: list[str] = []
    last_flush = time.time()

    def on_message(chan, method, _props, body) -> None:
        nonlocal last_flush
        t_start = time.time()
        msg = json.loads(body)
        chan.basic_ack(method.delivery_tag)
        t_done = time.time()
        lines.append(f"{msg['id']} {msg['t']:.6f} {t_start:.6f} {t_done:.6f}\n")

    ch.basic_consume(os.environ["BENCH_QUEUE"], on_message)
    while True:
        conn.process_data_events(time_limit=0.05)
        if lines and (len(lines) >= 200 or time.time() - last_flush >= 0.1):
            os.write(fd, "".join(lines).encode())
            lines.clear()
            last_flush = time.time()


if __name__ == "__main__":
    main()
