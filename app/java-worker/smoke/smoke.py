#!/usr/bin/env python3
"""End-to-end smoke test of the Java worker jar against a real, private RabbitMQ.

Starts RabbitMQ as a plain process on 127.0.0.1:5699 (node javatest@localhost, data under
/tmp/tf-java-rmq), runs the jar, plays the orchestrator by hand with pika, and checks what
the worker sends back against app/schemas. Needs root and the rabbitmq-server package.

    .venv/bin/python app/java-worker/smoke/smoke.py --jar build/taskforce-worker.jar

Each check prints one line; the last line is "N passed, N failed".
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Optional

import pika
from jsonschema import Draft202012Validator

REPO = Path(__file__).resolve().parents[3]
SCHEMAS = REPO / "app" / "schemas"
RABBIT_SBIN = Path("/usr/lib/rabbitmq/bin")
PORT = 5699
DIST_PORT = 25699
NODE = "javatest@localhost"
BASE = Path("/tmp/tf-java-rmq")

VALIDATORS = {n: Draft202012Validator(json.loads((SCHEMAS / f"{n}.schema.json").read_text()))
              for n in ("worker-event", "heartbeat")}


class Rabbit:
    """A private RabbitMQ node, started and stopped by this script only."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.proc: Optional[subprocess.Popen] = None
        self.passwords = {"worker": secrets.token_urlsafe(12), "smoke": secrets.token_urlsafe(12)}

    def env(self) -> dict:
        e = dict(os.environ)
        e.update({
            "RABBITMQ_NODENAME": NODE, "RABBITMQ_NODE_PORT": str(PORT), "RABBITMQ_DIST_PORT": str(DIST_PORT),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"), "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.base / "rabbit.pid"), "HOME": str(self.base),
        })
        return e

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([str(RABBIT_SBIN / "rabbitmqctl"), "-n", NODE, *args], env=self.env(),
                              capture_output=True, text=True, check=check, timeout=120)

    def start(self) -> None:
        if self.base.exists():
            shutil.rmtree(self.base)
        for d in ("mnesia", "log"):
            (self.base / d).mkdir(parents=True)
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{PORT}\nheartbeat = 10\n"
            "vm_memory_high_watermark.relative = 0.1\ndisk_free_limit.absolute = 100MB\nlog.console = false\n")
        (self.base / "enabled_plugins").write_text("[].\n")
        cookie = self.base / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16))
        os.chmod(cookie, 0o400)
        subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(self.base)], check=True)
        self.proc = subprocess.Popen([str(RABBIT_SBIN / "rabbitmq-server")], env=self.env(),
                                     stdout=open(self.base / "server.out", "wb"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        end = time.time() + 120
        while self.ctl("await_startup", "--timeout", "60", check=False).returncode != 0:
            if time.time() > end or self.proc.poll() is not None:
                raise RuntimeError(f"RabbitMQ did not start; see {self.base}/server.out and {self.base}/log")
            time.sleep(1)
        self.ctl("add_vhost", "taskforce")
        for user, pw in self.passwords.items():
            self.ctl("add_user", user, pw)
            self.ctl("set_permissions", "-p", "taskforce", user, ".*", ".*", ".*")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.ctl("stop", check=False)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


class Harness:
    """Plays the orchestrator: publishes job and control messages, collects worker events."""

    def __init__(self, rabbit: Rabbit) -> None:
        creds = pika.PlainCredentials("smoke", rabbit.passwords["smoke"])
        self.params = pika.ConnectionParameters("127.0.0.1", PORT, "taskforce", creds, heartbeat=30)
        self.connect()
        self.events: list[dict] = []

    def connect(self) -> None:
        self.conn = pika.BlockingConnection(self.params)
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()
        # The same exchanges the Python side declares; declaring them again is a no-op.
        self.ch.exchange_declare("tf.worker-events", "topic", durable=True)
        self.ch.exchange_declare("tf.jobs", "direct", durable=True)
        self.ch.exchange_declare("tf.control", "fanout", durable=True)
        self.events_q = self.ch.queue_declare("", exclusive=True).method.queue
        self.ch.queue_bind(self.events_q, "tf.worker-events", "#")

    def publish_job(self, job_type: str, payload, priority: int = 5, queue: str = "default", attempt: int = 1,
                    timeout_s: float = 10.0, job_id: Optional[str] = None) -> str:
        jid = job_id or uuid.uuid4().hex
        lane = "high" if priority >= 7 else "normal" if priority >= 4 else "low"
        rk = f"tf.jobs.{queue}.{lane}"
        msg = {"v": 1, "id": jid, "type": job_type, "payload": payload, "queue": queue, "priority": priority,
               "attempt": attempt, "generation": 0, "max_attempts": 3, "timeout_s": timeout_s, "epoch": 1,
               "submitted_at": time.time(), "lane_queue": rk}
        self.publish_raw(rk, json.dumps(msg).encode())
        return jid

    def publish_raw(self, routing_key: str, body: bytes, exchange: str = "tf.jobs") -> None:
        self.ch.basic_publish(exchange, routing_key, body,
                              pika.BasicProperties(content_type="application/json", delivery_mode=2),
                              mandatory=True)

    def cancel(self, *job_ids: str) -> None:
        body = json.dumps({"v": 1, "kind": "cancel", "job_ids": list(job_ids), "ts": time.time()}).encode()
        self.ch.basic_publish("tf.control", "", body, pika.BasicProperties(content_type="application/json"))

    def pump(self, seconds: float = 0.05) -> None:
        end = time.time() + seconds
        while True:
            m, _, body = self.ch.basic_get(self.events_q, auto_ack=True)
            if m is None:
                if time.time() >= end:
                    return
                self.conn.sleep(0.02)
                continue
            self.events.append(json.loads(body))

    def wait(self, pred: Callable[[dict], bool], timeout: float = 15.0) -> Optional[dict]:
        end = time.time() + timeout
        seen = 0
        while time.time() < end:
            self.pump(0.05)
            for e in self.events[seen:]:
                if pred(e):
                    return e
            seen = 0
        return None

    def of(self, jid: str) -> list[dict]:
        return [e for e in self.events if e.get("job_id") == jid]

    def terminal(self, jid: str, timeout: float = 15.0) -> Optional[dict]:
        return self.wait(lambda e: e.get("job_id") == jid and e.get("kind") in ("succeeded", "failed"), timeout)


class Report:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        if ok:
            self.passed += 1
            print(f"ok   {name}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL {name}: {detail}", flush=True)
        return ok


def start_worker(jar: str, cfg: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(["java", "-Xmx128m", "-jar", jar, "--config", str(cfg)],
                            stdout=open(log.with_suffix(".out"), "wb"), stderr=open(log, "wb"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jar", default=str(REPO / "build" / "taskforce-worker.jar"))
    ap.add_argument("--keep", action="store_true", help=f"keep {BASE} for a post-mortem")
    a = ap.parse_args()
    if os.geteuid() != 0 or not (RABBIT_SBIN / "rabbitmq-server").exists():
        print("java-smoke needs root and the rabbitmq-server package", file=sys.stderr)
        return 2
    if not Path(a.jar).exists():
        print(f"no jar at {a.jar}; run make java-build", file=sys.stderr)
        return 2

    r = Report()
    rabbit = Rabbit(BASE)
    worker: Optional[subprocess.Popen] = None
    t0 = time.time()
    try:
        rabbit.start()
        print(f"RabbitMQ {NODE} up on 127.0.0.1:{PORT} in {time.time() - t0:.1f}s", flush=True)
        cfg = BASE / "worker.toml"
        cfg.write_text(
            'node = "smoke"\n[amqp]\nhosts = ["127.0.0.1:5698", "127.0.0.1:%d"]\nvhost = "taskforce"\n'
            'user = "worker"\npassword = "%s"\nheartbeat_s = 10\n'
            '[worker]\nqueues = ["default"]\nslots = 2\nprefetch = 2\ngrace_s = 6\nheartbeat_s = 1.0\n'
            'handlers = ["taskforce.worker.demo"]\n' % (PORT, rabbit.passwords["worker"]))
        log = BASE / "worker.log"
        h = Harness(rabbit)
        worker = start_worker(a.jar, cfg, log)

        hb = h.wait(lambda e: e.get("kind") == "heartbeat", 60)
        r.check("heartbeat arrives, lang java, valid", hb is not None and hb["lang"] == "java"
                and not list(VALIDATORS["heartbeat"].iter_errors(hb)), str(hb))
        if hb is None:
            return 1
        r.check("worker id is <node>-java-<pid>", hb["worker_id"] == f"smoke-java-{worker.pid}", hb["worker_id"])
        r.check("heartbeat lists the demo types", {"echo", "noop", "jvm_info", "hang"} <= set(hb["types"]),
                str(hb["types"]))

        qs = json.loads(rabbit.ctl("list_queues", "-p", "taskforce", "name", "type", "arguments",
                                   "--formatter", "json").stdout)
        lanes = {q["name"]: q for q in qs if q["name"].startswith("tf.jobs.default.")}
        want_args = {"x-queue-type": "quorum", "x-delivery-limit": 5, "x-dead-letter-exchange": "tf.dlx",
                     "x-dead-letter-routing-key": "tf.dead"}
        args_ok = len(lanes) == 3 and all(
            q["type"] == "quorum" and {k: v for k, _, v in q["arguments"]} == want_args for q in lanes.values())
        r.check("worker declared the three lane queues with the Python arguments", args_ok, json.dumps(lanes))
        try:
            sys.path.insert(0, str(REPO / "app"))
            from taskforce.amqp import topology
            tch = h.conn.channel()
            topology.declare_core(tch)
            topology.declare_lanes(tch, "default")
            tch.close()
            r.check("the Python side re-declares the same topology without a conflict", True)
        except ImportError as e:
            print(f"skip the Python topology cross-check: {e}", flush=True)
        except Exception as e:  # PRECONDITION_FAILED: the arguments differ
            r.check("the Python side re-declares the same topology without a conflict", False, repr(e))

        # echo: started -> succeeded, result = payload
        payload = {"text": "größe ✓", "n": [1, 2.5, None], "big": 9007199254740993}
        jid = h.publish_job("echo", payload)
        t = h.terminal(jid)
        evs = h.of(jid)
        r.check("echo succeeds with the payload as result", t is not None and t["kind"] == "succeeded"
                and t["result"] == payload, str(t))
        r.check("started comes before succeeded", [e["kind"] for e in evs][:1] == ["started"], str(evs))
        bad = [e for e in h.events if e.get("kind") != "heartbeat" and list(VALIDATORS["worker-event"].iter_errors(e))]
        r.check("every worker event so far is schema-valid", not bad, str(bad[:2]))

        jid = h.publish_job("fail", {"fail_times": 1})
        t = h.terminal(jid)
        r.check("fail -> failed PlannedFailure 'planned failure', as in Python", t is not None
                and t["kind"] == "failed" and t["error"] == {"type": "PlannedFailure", "message": "planned failure"}, str(t))

        jid = h.publish_job("cpu", {"n": 4_000_000})
        t = h.terminal(jid)
        r.check("cpu keeps the exact sum past 2^63", t is not None and t.get("result") == {"sum": 21333325333334000000},
                str(t))

        jid = h.publish_job("resize", {})
        t = h.terminal(jid)
        r.check("unknown type -> failed UnknownJobType, no started", t is not None and
                t["error"]["type"] == "UnknownJobType" and [e["kind"] for e in h.of(jid)] == ["failed"], str(h.of(jid)))

        # malformed -> tf.dead with reason and source headers, and the worker lives on
        h.ch.queue_declare("tf.dead", durable=True, passive=True)
        h.publish_raw("tf.jobs.default.low", b"this is not json {")
        got = None
        end = time.time() + 15
        while time.time() < end and got is None:
            m, props, body = h.ch.basic_get("tf.dead", auto_ack=True)
            if m is not None and body == b"this is not json {":
                got = props
            else:
                h.conn.sleep(0.1)
        r.check("malformed message dead-lettered with x-taskforce-reason and x-taskforce-source",
                got is not None and got.headers.get("x-taskforce-source") == "tf.jobs.default.low"
                and "not valid JSON" in got.headers.get("x-taskforce-reason", ""),
                str(got.headers if got else None))
        jid = h.publish_job("noop", {})
        t = h.terminal(jid)
        r.check("worker still serves after the malformed message", t is not None and t["kind"] == "succeeded", str(t))

        # hang: both slots stuck past their timeout; the next job still runs
        hangs = [h.publish_job("hang", {}, timeout_s=1.0) for _ in range(2)]
        after = h.publish_job("echo", "after the hangs")
        ts = [h.terminal(j, 20) for j in hangs]
        r.check("hang -> failed Timeout at timeout_s", all(t is not None and t["error"]["type"] == "Timeout" for t in ts),
                str(ts))
        t = h.terminal(after, 20)
        r.check("a job after two stuck handlers (2 slots) still succeeds", t is not None and t["kind"] == "succeeded",
                str(t))

        # cancel before start and while running
        h.cancel("cancelled-early")
        time.sleep(0.3)
        h.publish_job("echo", {}, job_id="cancelled-early")
        t = h.terminal("cancelled-early")
        r.check("a cancelled job never starts: failed Cancelled, no started", t is not None
                and t["error"]["type"] == "Cancelled" and [e["kind"] for e in h.of("cancelled-early")] == ["failed"],
                str(h.of("cancelled-early")))
        jid = h.publish_job("sleep", {"seconds": 30}, timeout_s=60)
        h.wait(lambda e: e.get("job_id") == jid and e.get("kind") == "started")
        h.cancel(jid)
        t = h.terminal(jid, 10)
        r.check("a running sleep sees the cancel: failed Cancelled", t is not None and t["error"]["type"] == "Cancelled",
                str(t))

        jid = h.publish_job("sleep", {"seconds": 1.5})
        t = h.terminal(jid)
        r.check("sleep reports progress, then slept", t is not None and t["result"] == {"slept": 1.5}
                and any(e["kind"] == "progress" for e in h.of(jid)), str(h.of(jid)))

        # lanes: with both slots busy, a high job sent after low ones starts first
        blockers = [h.publish_job("sleep", {"seconds": 2}) for _ in range(2)]
        for b in blockers:
            h.wait(lambda e, b=b: e.get("job_id") == b and e.get("kind") == "started")
        lows = [h.publish_job("echo", i, priority=1) for i in range(6)]
        time.sleep(0.3)
        high = h.publish_job("echo", "high", priority=9)
        for j in lows + [high]:
            h.terminal(j, 20)
        order = [e["job_id"] for e in h.events if e.get("kind") == "started" and e["job_id"] in lows + [high]]
        r.check("a high job sent after six low ones starts before them", order[:1] == [high], str(order))

        # broker restart: the worker recovers and keeps serving
        rabbit.ctl("stop_app")
        time.sleep(2)
        rabbit.ctl("start_app")
        rabbit.ctl("await_startup", "--timeout", "60", check=False)
        h.connect()
        time.sleep(1)
        jid = h.publish_job("echo", "after restart")
        t = h.terminal(jid, 40)
        r.check("after a broker restart the worker recovers and runs jobs", t is not None and t["kind"] == "succeeded",
                str(t))

        # SIGTERM: running jobs finish within grace_s, buffered ones go back to the queue. Both
        # slots are busy, so the two low jobs wait in the buffer (the low lane's window of
        # slots + prefetch has room for them) until the drain hands them back.
        running = [h.publish_job("sleep", {"seconds": 2}) for _ in range(2)]
        for j in running:
            h.wait(lambda e, j=j: e.get("job_id") == j and e.get("kind") == "started")
        queued = [h.publish_job("noop", {}, priority=1) for _ in range(2)]
        time.sleep(0.5)
        t_term = time.time()
        worker.send_signal(signal.SIGTERM)
        try:
            rc = worker.wait(30)
        except subprocess.TimeoutExpired:
            rc = None
        took = time.time() - t_term
        r.check("SIGTERM: the worker exits within grace_s", rc is not None and took < 8, f"rc={rc} took={took:.1f}s")
        ok = all((h.terminal(j, 5) or {}).get("kind") == "succeeded" for j in running)
        r.check("SIGTERM: running jobs finished and were reported", ok, str([h.of(j) for j in running]))
        h.pump(0.5)
        r.check("SIGTERM: buffered jobs were not started", all(not h.of(j) for j in queued), str([h.of(j) for j in queued]))
        depth = h.ch.queue_declare("tf.jobs.default.low", durable=True, passive=True).method.message_count
        r.check("SIGTERM: buffered jobs are back in their queue", depth == 2, f"ready={depth}")
        requeued = [line for line in log.read_text().splitlines() if "requeued 2 unstarted" in line]
        r.check("SIGTERM: the worker says it requeued the two it held", bool(requeued), "no 'requeued 2' log line")

        execs = [json.loads(line) for line in log.with_suffix(".out").read_text().splitlines() if line.startswith("{")]
        r.check("stdout has one exec line per handler run", execs and all(
            set(x) == {"exec", "attempt", "node", "worker_id"} for x in execs), str(execs[:3]))
        bad = [e for e in h.events if e.get("kind") != "heartbeat" and list(VALIDATORS["worker-event"].iter_errors(e))]
        r.check(f"all {len(h.events)} events schema-valid", not bad, str(bad[:2]))
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait(10)
        rabbit.stop()
        if not a.keep and r.failed == 0:
            shutil.rmtree(BASE, ignore_errors=True)
        elif r.failed:
            print(f"logs kept under {BASE}", flush=True)
    print(f"java-smoke: {r.passed} passed, {r.failed} failed")
    return 0 if r.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
