"""The Python worker SDK.

    from taskforce.worker import Worker
    w = Worker.from_config("/etc/taskforce/taskforce.toml")

    @w.handler("resize")
    def resize(payload, ctx):
        ctx.progress(0.5)
        return {"ok": True}

    w.run()

The parent process owns the AMQP connection and never runs handler code; slots do.
Each job: `started` -> handler under timeout -> `succeeded`/`failed` published with a
confirm -> only then ack. A crash before the ack means RabbitMQ redelivers. The loop does not
wait for the confirm: the ack waits in `PendingAcks` while the slots run the next jobs.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import time
from collections import OrderedDict
from multiprocessing.connection import wait
from typing import Any, Callable, Optional

import pika

from ..amqp import topology as topo
from ..amqp.confirms import ConfirmBatch, PublishFailed
from ..amqp.connection import CONNECT_ERRORS, connect_forever, dumps, props
from ..config import Config, WorkerConfig, load
from ..model import LANES, JOB_ID_RE
from .acks import PendingAcks
from .slots import Handler, Slot

log = logging.getLogger("taskforce.worker")
LANE_RANK = {lane: i for i, lane in enumerate(LANES)}   # high=0 first


class BadJob(ValueError):
    pass


def parse_job(body: bytes) -> dict:
    """Validate a job message (app/schemas/job.schema.json) enough to run it safely."""
    try:
        job = json.loads(body)
    except ValueError as e:
        raise BadJob(f"not JSON: {e}") from None
    if not isinstance(job, dict):
        raise BadJob("not a JSON object")
    for key, kind in (("id", str), ("type", str), ("attempt", int), ("timeout_s", (int, float))):
        if not isinstance(job.get(key), kind) or isinstance(job.get(key), bool):
            raise BadJob(f"field '{key}' missing or not {getattr(kind, '__name__', 'a number')}")
    if not JOB_ID_RE.match(job["id"]):
        raise BadJob("field 'id' is not a valid job id")
    if job["attempt"] < 1 or job["timeout_s"] <= 0:
        raise BadJob("attempt must be >= 1 and timeout_s > 0")
    job.setdefault("generation", 0)
    job.setdefault("payload", None)
    return job


class Worker:
    def __init__(self, cfg: Config, worker_id: Optional[str] = None) -> None:
        self.cfg = cfg
        self.wcfg: WorkerConfig = cfg.need("worker")
        self.node = cfg.node
        self.worker_id = worker_id or f"{cfg.node}-py-{os.getpid()}"
        self.handlers: dict[str, Handler] = {}
        self.cancelled: "OrderedDict[str, float]" = OrderedDict()
        # (id, attempt, generation) this worker already reported: a second delivery of one
        # (a republish after an orchestrator failover) is acked without running it again.
        self.reported: "OrderedDict[tuple, None]" = OrderedDict()
        self.buffer: list[tuple[int, float, dict, Any]] = []  # (lane rank, arrival, job, delivery)
        self.slots: list[Slot] = []
        self.draining = False
        self.started_at = time.time()
        self.executed = 0

    @classmethod
    def from_config(cls, path: Optional[str] = None, **kw) -> "Worker":
        return cls(load(path), **kw)

    def handler(self, job_type: str) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.handlers[job_type] = fn
            return fn
        return register

    def load_handler_modules(self) -> None:
        """Import each module named in [worker].handlers and call its register(worker)."""
        for name in self.wcfg.handlers:
            importlib.import_module(name).register(self)

    # ---- the main loop ---------------------------------------------------------------------
    def run(self) -> int:
        if not self.handlers:
            raise RuntimeError("no handlers registered; nothing to run")
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        self.slots = [Slot(i, self.handlers, self.node, self.worker_id) for i in range(self.wcfg.slots)]
        log.info("worker %s: types %s, queues %s, %d slots", self.worker_id, sorted(self.handlers),
                 self.wcfg.queues, self.wcfg.slots)
        try:
            while not self.draining:
                conn = connect_forever(self.cfg.amqp, self.worker_id, lambda: self.draining)
                if conn is None:
                    break
                try:
                    self._serve(conn)
                except CONNECT_ERRORS + (PublishFailed,) as e:
                    log.warning("lost the broker (%r); running jobs will be redelivered; reconnecting", e)
                    self._abandon_all()
                finally:
                    try:
                        if conn.is_open:
                            conn.close()
                    except Exception:
                        pass
        finally:
            for s in self.slots:
                s.stop()
        log.info("worker %s stopped after %d jobs", self.worker_id, self.executed)
        return 0

    def _on_term(self, *_):
        if not self.draining:
            log.info("draining: finishing running jobs within %.0fs, handing the rest back", self.wcfg.grace_s)
        self.draining = True

    def _serve(self, conn: pika.BlockingConnection) -> None:
        ch = conn.channel()
        topo.declare_core(ch)
        # Per consumer, so each lane has its own window. Running jobs stay unacked, so the window
        # is every slot plus `prefetch` waiting; a lane can never starve the slots of another.
        ch.basic_qos(prefetch_count=self.wcfg.slots + self.wcfg.prefetch)
        self.tags = []
        for q in self.wcfg.queues:
            for name in topo.declare_lanes(ch, q):
                lane = name.rsplit(".", 1)[1]
                self.tags.append(ch.basic_consume(name, lambda c, m, p, b, lane=lane, src=name: self._on_job(m, b, lane, src)))
        ctl = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
        ch.queue_bind(ctl, topo.CONTROL_X)
        ch.basic_consume(ctl, self._on_control, auto_ack=True)
        self.ch = ch
        self.conn = conn
        self.pub = ConfirmBatch(conn)
        self.ev = conn.channel()
        self.acks = PendingAcks()
        last_hb = 0.0
        drain_deadline = None
        while True:
            conn.process_data_events(time_limit=0)
            self._collect(timeout=0.01)
            self._enforce_timeouts()
            self._flush()
            if self.draining:
                if drain_deadline is None:
                    drain_deadline = time.monotonic() + self.wcfg.grace_s
                    for t in self.tags:
                        ch.basic_cancel(t)
                    self._hand_back_buffer()
                if not any(s.busy for s in self.slots):
                    self._flush(wait=True)
                    self._heartbeat()
                    return
                if time.monotonic() > drain_deadline:
                    log.warning("grace period over; %d jobs handed back unfinished", sum(s.busy for s in self.slots))
                    self._flush(wait=True)
                    self._abandon_all(requeue=True)
                    return
            else:
                self._start_buffered()
            if time.monotonic() - last_hb >= self.wcfg.heartbeat_s:
                self._heartbeat()
                last_hb = time.monotonic()

    # ---- deliveries ------------------------------------------------------------------------
    def _on_job(self, method, body: bytes, lane: str, source: str) -> None:
        try:
            job = parse_job(body)
        except BadJob as e:
            log.warning("dead-lettering a malformed message from %s: %s", source, e)
            self.pub.publish(topo.DLX, topo.DEAD_Q, body,
                             props({"x-taskforce-reason": str(e), "x-taskforce-source": source}))
            self.acks.add(method.delivery_tag, self.pub.sequence)
            return
        self.buffer.append((LANE_RANK[lane], time.monotonic(), job, method.delivery_tag))

    def _on_control(self, ch, method, properties, body) -> None:
        try:
            msg = json.loads(body)
            ids = [str(i) for i in msg.get("job_ids", [])] if msg.get("kind") == "cancel" else []
        except (ValueError, AttributeError):
            return
        for jid in ids:
            self.cancelled[jid] = time.time()
            for s in self.slots:
                if s.busy and s.job["id"] == jid:
                    s.cancel()
        while len(self.cancelled) > 100_000:
            self.cancelled.popitem(last=False)

    def _start_buffered(self) -> None:
        free = [s for s in self.slots if not s.busy]
        if not free or not self.buffer:
            return
        self.buffer.sort(key=lambda t: (t[0], t[1]))   # highest lane first, then arrival
        while free and self.buffer:
            _, _, job, tag = self.buffer.pop(0)
            if (job["id"], job["attempt"], job.get("generation", 0)) in self.reported:
                log.info("job %s attempt %s delivered again after its result; not running it twice",
                         job["id"], job["attempt"])
                self.acks.add(tag, 0)
                continue
            if job["id"] in self.cancelled:
                self._finish(job, tag, "failed", error={"type": "Cancelled", "message": "cancelled before it started"})
                continue
            if job["type"] not in self.handlers:
                self._finish(job, tag, "failed", error={"type": "UnknownJobType",
                                                        "message": f"worker {self.worker_id} has no handler for '{job['type']}'"})
                continue
            self._event(job, "started")
            free.pop(0).start(job, tag)

    def _collect(self, timeout: float) -> None:
        busy = {s.conn: s for s in self.slots if s.busy}
        if not busy:
            # Idle: wait on the broker, so a job that arrives starts at once.
            self.conn.process_data_events(time_limit=timeout)
            return
        for c in wait(list(busy), timeout=timeout):
            s = busy[c]
            try:
                msg = c.recv()
            except (EOFError, OSError):
                job, tag = s.finish()
                s.kill_and_respawn()
                self._finish(job, tag, "failed", error={"type": "WorkerCrash", "message": "the handler's process died"})
                continue
            if msg[0] == "progress":
                self._event(s.job, "progress", progress=msg[1])
            elif msg[0] == "done":
                job, tag = s.finish()
                self._finish(job, tag, "succeeded", result=msg[1])
            elif msg[0] == "error":
                job, tag = s.finish()
                self._finish(job, tag, "failed", error={"type": msg[1], "message": msg[2]})

    def _enforce_timeouts(self) -> None:
        now = time.monotonic()
        for s in self.slots:
            if s.busy and now > s.deadline:
                job, tag = s.finish()
                s.kill_and_respawn()
                self._finish(job, tag, "failed", error={"type": "Timeout",
                                                        "message": f"handler ran past timeout_s={job['timeout_s']}"})

    def _finish(self, job: dict, tag: Any, kind: str, **extra) -> None:
        self._event(job, kind, **extra)
        self.acks.add(tag, self.pub.sequence, (job["id"], job["attempt"], job.get("generation", 0)))
        self.executed += 1

    def _flush(self, wait: bool = False) -> None:
        """Ack the deliveries whose outcomes the broker has confirmed: a crash in between means
        a redelivery, never a loss. `wait` blocks until every outcome is confirmed."""
        if not self.acks:
            return
        if wait:
            self.pub.wait(timeout=30)
        for tag, key in self.acks.ready(self.pub.confirmed_through(timeout=30)):
            self.ch.basic_ack(tag)
            # Only a confirmed outcome counts as reported; an unconfirmed one will be redelivered and run.
            if key is not None:
                self.reported[key] = None
        while len(self.reported) > 10_000:
            self.reported.popitem(last=False)

    def _hand_back_buffer(self) -> None:
        for _, _, _, tag in self.buffer:
            self.ch.basic_nack(tag, requeue=True)
        self.buffer.clear()

    def _abandon_all(self, requeue: bool = False) -> None:
        for s in self.slots:
            if s.busy:
                _, tag = s.finish()
                s.kill_and_respawn()
                if requeue:
                    try:
                        self.ch.basic_nack(tag, requeue=True)
                    except Exception:
                        pass
        self.buffer.clear()

    # ---- publishing ------------------------------------------------------------------------
    def _event(self, job: dict, kind: str, **extra) -> None:
        """Every event of a job goes on the one confirm channel: RabbitMQ keeps the order of
        messages within a channel only, and on two channels a quick job's `succeeded` could
        reach the orchestrator before its `started`. Only the outcome's confirm gates the ack."""
        msg = {"v": 1, "kind": kind, "job_id": job["id"], "attempt": job["attempt"],
               "generation": job.get("generation", 0), "worker_id": self.worker_id, "node": self.node,
               "lang": "python", "ts": time.time(), **extra}
        self.pub.publish(topo.WORKER_EVENTS_X, f"job.{kind}", dumps(msg), props())

    def _heartbeat(self) -> None:
        in_flight = [s.job["id"] for s in self.slots if s.busy] + [b[2]["id"] for b in self.buffer]
        hb = {"v": 1, "kind": "heartbeat", "worker_id": self.worker_id, "node": self.node, "lang": "python",
              "types": sorted(self.handlers), "queues": list(self.wcfg.queues), "capacity": len(self.slots),
              "in_flight": in_flight, "ts": time.time(), "started_at": self.started_at}
        self.ev.basic_publish(topo.WORKER_EVENTS_X, "heartbeat", dumps(hb), props())
