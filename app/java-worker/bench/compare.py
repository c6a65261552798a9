"""No-op job throughput of one Java worker against one Python worker with the same slots,
measured in the same run, in interleaved rounds (the machine is shared and noisy; compare the
ratio, not the absolute figures).

    .venv/bin/python app/java-worker/bench/compare.py [--via broker|cluster] [--jobs 2000] [--rounds 3] [--slots 4]

--via broker (the default) measures the workers themselves: a private RabbitMQ and the two
workers only, each consuming its own queue (`python`, `java`). A round stops one worker
(SIGSTOP), loads N job messages into its lane queue with publisher confirms, lets it go
(SIGCONT), and times it from its first `started` event to its last outcome, by the
timestamps the worker put in those events. Every job goes the whole protocol: started,
the handler in a slot, the outcome with a confirm, then the ack.

--via cluster measures the whole path instead (gateway, Raft orchestrators, worker): one
DevCluster with 1 Python and 1 Java worker, N no-op jobs submitted to queue `python` or
`java`, timed from the first start to the last finish in the job records. Here the
orchestrator, not the worker, may be what limits both.

Needs root and the rabbitmq-server package, and build/taskforce-worker.jar (make java-build).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

import pika  # noqa: E402
import pika.exceptions  # noqa: E402

from dev.cluster import PY, DevCluster, Proc, Rabbit, free_port, say  # noqa: E402
from taskforce.amqp.confirms import ConfirmBatch  # noqa: E402
from taskforce.amqp.connection import dumps, props  # noqa: E402

LANGS = ("python", "java")
TERMINAL = ("succeeded", "failed")


def job_message(jid: str, queue: str) -> bytes:
    return dumps({"v": 1, "id": jid, "type": "noop", "payload": {}, "queue": queue, "priority": 5,
                  "attempt": 1, "generation": 0, "max_attempts": 1, "timeout_s": 30.0, "epoch": 1,
                  "submitted_at": time.time()})


class BrokerBench:
    """A private RabbitMQ with one Python and one Java worker, and nothing else."""

    def __init__(self, base: Path, slots: int, jar: str) -> None:
        self.base, self.slots, self.jar = base, slots, jar
        self.rabbit = Rabbit(base / "rabbitmq", free_port())
        self.workers: dict[str, Proc] = {}

    def up(self) -> None:
        if self.base.exists():
            shutil.rmtree(self.base)
        self.base.mkdir(parents=True)
        self.rabbit.start()
        self.rabbit.await_startup()
        self.rabbit.provision()
        for lang in LANGS:
            cfg = self.base / f"{lang}.toml"
            cfg.write_text(
                f'node = "bench-{lang}"\n[amqp]\nhosts = ["127.0.0.1:{self.rabbit.port}"]\nvhost = "taskforce"\n'
                f'user = "worker"\npassword = "{self.rabbit.passwords["worker"]}"\nheartbeat_s = 10\n'
                f'[worker]\nqueues = ["{lang}"]\nslots = {self.slots}\nprefetch = 2\ngrace_s = 10\n')
            argv = ([PY, "-m", "taskforce.cli", "worker", "--config", str(cfg)] if lang == "python"
                    else ["java", "-Xmx128m", "-jar", self.jar, "--config", str(cfg)])
            self.workers[lang] = Proc(lang, argv, dict(os.environ, PYTHONUNBUFFERED="1"),
                                      self.base / "logs" / f"{lang}.log")
            self.workers[lang].start()
        self.conn = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", self.rabbit.port, "taskforce", pika.PlainCredentials("admin", self.rabbit.passwords["admin"]),
            heartbeat=60))
        self.ch = self.conn.channel()
        self.ch.exchange_declare("tf.worker-events", "topic", durable=True)
        self.tap = self.ch.queue_declare("", exclusive=True).method.queue   # lives across rounds
        self.ch.queue_bind(self.tap, "tf.worker-events", routing_key="job.*")
        self.pub = ConfirmBatch(self.conn)
        end = time.time() + 120
        for lang in LANGS:
            while True:
                try:
                    probe = self.conn.channel()
                    n = probe.queue_declare(f"tf.jobs.{lang}.normal", passive=True).method.consumer_count
                    probe.close()
                    if n:
                        break
                except pika.exceptions.ChannelClosedByBroker:
                    pass
                if time.time() > end or not self.workers[lang].alive:
                    raise RuntimeError(f"the {lang} worker is not consuming; see {self.base / 'logs'}")
                time.sleep(0.5)

    def run(self, lang: str, n: int, tag: str) -> dict:
        q = f"tf.jobs.{lang}.normal"
        ids = {f"{tag}-{i}" for i in range(n)}
        w = self.workers[lang]
        w.signal(signal.SIGSTOP)   # load the queue first, so the publisher is not what is measured
        try:
            for jid in sorted(ids):
                self.pub.publish("tf.jobs", q, job_message(jid, lang), props())
                if self.pub.outstanding >= 500:
                    self.pub.wait(30)
            self.pub.wait(30)
        finally:
            w.signal(signal.SIGCONT)
        started: dict[str, float] = {}
        ended: dict[str, tuple[str, float]] = {}
        deadline = time.time() + 300
        for m, _, body in self.ch.consume(self.tap, auto_ack=True, inactivity_timeout=1):
            if m is not None:
                e = json.loads(body)
                if e["job_id"] in ids:
                    if e["kind"] == "started":
                        started[e["job_id"]] = e["ts"]
                    elif e["kind"] in TERMINAL:
                        ended[e["job_id"]] = (e["kind"], e["ts"])
            if len(ended) == n or time.time() > deadline:
                break
        self.ch.cancel()
        try:
            self.ch.queue_purge("tf.orchestrator.events")   # nobody consumes it here
        except pika.exceptions.ChannelClosedByBroker:
            self.ch = self.conn.channel()
        ok = sum(1 for k, _ in ended.values() if k == "succeeded")
        span = max(ts for _, ts in ended.values()) - min(started.values())
        return {"lang": lang, "jobs": n, "succeeded": ok, "seconds": span, "per_s": n / span}

    def down(self) -> None:
        for w in self.workers.values():
            w.signal(signal.SIGCONT)
            w.kill()
        self.rabbit.stop()


class ClusterBench:
    """The whole path: gateway, Raft orchestrators, one worker of each language."""

    def __init__(self, base: Path, slots: int, jar: str) -> None:
        self.c = DevCluster(base, gateways=1, workers=1, worker_slots=slots, java_workers=1, java_jar=jar)

    def up(self) -> None:
        self.c.up()

    def run(self, lang: str, n: int, tag: str) -> dict:
        ids: list[str] = []
        with self.c.client() as cl:
            for start in range(0, n, 1000):
                r = cl.post("/v1/jobs/batch", json={"jobs": [{"type": "noop", "queue": lang}] * min(1000, n - start)})
                r.raise_for_status()
                ids += [x["id"] for x in r.json()["results"] if x["status"] == 202]
        done = self.c.wait_terminal(ids, timeout=600)
        ok = sum(1 for r in done.values() if r["status"] == "succeeded")
        starts = [a["started_at"] for r in done.values() for a in r["attempts"] if a.get("started_at")]
        unstarted = sum(1 for r in done.values() if not any(a.get("started_at") for a in r["attempts"]))
        if unstarted:
            say(f"{unstarted} {lang} job record(s) carry no started_at (their started event merged after the outcome?)")
        first = min(starts)
        last = max(r["finished_at"] for r in done.values())
        assert all(r["attempts"][-1]["lang"] == lang for r in done.values())
        return {"lang": lang, "jobs": n, "succeeded": ok, "seconds": last - first, "per_s": n / (last - first)}

    def down(self) -> None:
        self.c.down()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--via", choices=["broker", "cluster"], default="broker")
    ap.add_argument("--jobs", type=int, default=2000, help="jobs per round")
    ap.add_argument("--rounds", type=int, default=3, help="measured rounds per language, after one warm-up round")
    ap.add_argument("--slots", type=int, default=4, help="slots of each worker")
    ap.add_argument("--dir", default="/tmp/taskforce-java-bench")
    ap.add_argument("--jar", default=str(REPO / "build" / "taskforce-worker.jar"))
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args()
    if not Path(a.jar).exists():
        print(f"no jar at {a.jar}: run make java-build first", file=sys.stderr)
        return 2
    bench = (BrokerBench if a.via == "broker" else ClusterBench)(Path(a.dir), a.slots, a.jar)
    runs: list[dict] = []
    try:
        bench.up()
        say(f"warm-up: {min(a.jobs, 500)} jobs per language")
        for lang in LANGS:
            bench.run(lang, min(a.jobs, 500), f"warm-{lang}")
        for r in range(a.rounds):
            # alternate which language goes first, so neither always follows the other
            for lang in (LANGS if r % 2 == 0 else LANGS[::-1]):
                res = bench.run(lang, a.jobs, f"r{r}-{lang}")
                runs.append(res)
                say(f"round {r + 1} {lang:6}: {res['jobs']} jobs ({res['succeeded']} succeeded) in "
                    f"{res['seconds']:.2f}s = {res['per_s']:.0f} jobs/s")
    finally:
        bench.down()
    med = {lang: statistics.median(x["per_s"] for x in runs if x["lang"] == lang) for lang in LANGS}
    print()
    print(f"no-op jobs/s via {a.via}, {a.slots} slots each, {a.jobs} jobs x {a.rounds} rounds (median):")
    for lang in LANGS:
        per = ", ".join(f"{x['per_s']:.0f}" for x in runs if x["lang"] == lang)
        print(f"  {lang:6} {med[lang]:7.0f}   (rounds: {per})")
    print(f"  java / python: {med['java'] / med['python']:.2f}")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"via": a.via, "slots": a.slots, "runs": runs, "median_per_s": med,
                                            "ratio_java_to_python": med["java"] / med["python"]}, indent=2))
    return 0 if all(x["succeeded"] == x["jobs"] for x in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
