"""What the Raft leader does, and only while it is leader.

Fencing: on election the leader first commits a new epoch. Every later commit carries that
epoch and the state machine refuses a stale one. Commands and events are acked only after
the batch that holds them has committed; if a commit fails or times out, or leadership is
lost, the leader closes its AMQP connection without acking, so RabbitMQ requeues what it held
for the next leader.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any, Optional

import pika
import pika.exceptions
from pysyncobj import SyncObj
from pysyncobj.syncobj import FAIL_REASON, SyncObjException

from ..amqp import topology as topo
from ..amqp.confirms import ConfirmBatch, publish_unflushed
from ..amqp.connection import connect, dumps, props
from ..config import Config
from ..crdt import LWWMap
from .raft import ReplicatedSchedule
from .schedule import CONTROL, DEAD, DISPATCH, EVENT, FENCED

log = logging.getLogger("taskforce.orchestrator")

BATCH_MAX = 500
BATCH_WAIT_S = 0.01
TICK_S = 0.2
# A new leader inherits dispatches its predecessor may already have published. Before it
# republishes them it listens this long, so that the workers' `started` events for the copies
# already out can arrive and mark those attempts started; it then skips them (_still_queued).
REPUBLISH_GRACE_S = 1.5


class StepDown(Exception):
    """Leadership is gone or uncertain; stop acting at once."""


class Leader:
    def __init__(self, cfg: Config, node: SyncObj, state: ReplicatedSchedule) -> None:
        self.cfg = cfg
        self.raft = cfg.need("raft")
        self.node = node
        self.state = state
        self.epoch = 0
        self.workers = LWWMap()           # heartbeats; local to the leader, not replicated
        self.conn: Optional[pika.BlockingConnection] = None
        self.pending: list[tuple[str, Any]] = []   # ("cmd"|"evt", decoded) in delivery order
        self.last_tag = 0
        self.acked_tag = 0
        self.published_upto = 0
        self.inherited_upto = 0
        self.lanes_declared: set[str] = set()
        self.became_leader_at = 0.0
        self.async_failure: Optional[str] = None

    # ---- the leadership life cycle --------------------------------------------------------------
    def is_leader(self) -> bool:
        return self.node._isLeader()

    def run_term(self, stopping) -> None:
        """Act as leader until leadership is lost or stopping() is true."""
        epoch = self.state.s.epoch + 1
        res = self._commit(self.state.begin_epoch, epoch, self.raft.self)
        if res == FENCED:
            raise StepDown("another leader committed a newer epoch")
        self.epoch = epoch
        self.async_failure = None
        self.became_leader_at = time.time()
        with self.state.lock:
            self.published_upto = self.state.s.outbox_done
            self.inherited_upto = max((e[0] for e in self.state.s.outbox), default=0)
        log.info("leader: epoch %d committed; consuming", epoch)
        self.last_tag = self.acked_tag = 0
        self.conn = connect(self.cfg.amqp, f"orchestrator-{self.cfg.node}", attempts=3)
        try:
            self._consume_loop(stopping)
        finally:
            try:
                if self.conn.is_open:
                    self.conn.close()   # unacked deliveries go back to their queues
            except Exception:
                pass
            self.conn = None
            self.pending.clear()

    def _commit(self, fn, *args) -> Any:
        if not self.is_leader():
            raise StepDown("not leader")
        try:
            res = fn(*args, sync=True, timeout=self.raft.commit_timeout_s)
        except SyncObjException as e:
            raise StepDown(f"commit failed: {e.errorCode if hasattr(e, 'errorCode') else e}") from None
        if res == FENCED:
            raise StepDown("fenced by a newer epoch")
        return res

    def _commit_async(self, fn, *args) -> None:
        """For commits nobody waits on (the outbox watermark, timer ticks): a lost one only
        means work is redone by the next leader. A failure still ends this term."""
        def done(res, err):
            if err != FAIL_REASON.SUCCESS:
                self.async_failure = f"async commit failed ({err})"
            elif res == FENCED:
                self.async_failure = "fenced by a newer epoch"
        fn(*args, callback=done)

    def _consume_loop(self, stopping) -> None:
        ch = self.conn.channel()
        topo.declare_core(ch)
        ch.basic_qos(prefetch_count=BATCH_MAX * 2)
        ch.basic_consume(topo.COMMANDS, self._on_command)
        ch.basic_consume(topo.ORCH_EVENTS_Q, self._on_event)
        self.ch = ch
        self.pub = ConfirmBatch(self.conn)
        self.evpub = self.conn.channel()   # events and control: no confirm, see _pump
        last_tick = 0.0
        batch_started = 0.0
        while not stopping():
            if not self.is_leader():
                raise StepDown("lost leadership")
            if self.async_failure:
                raise StepDown(self.async_failure)
            self.conn.process_data_events(time_limit=BATCH_WAIT_S if not self.pending else 0)
            now = time.time()
            if self.pending and not batch_started:
                batch_started = now
            if self.pending and (len(self.pending) >= BATCH_MAX or now - batch_started >= BATCH_WAIT_S):
                self._commit_batch(now)
                batch_started = 0.0
            elif not self.pending and self.last_tag > self.acked_tag:
                # Only heartbeats (or dead-lettered input) since the last commit: nothing to wait for.
                self._ack(self.last_tag)
            if now - last_tick >= TICK_S:
                self._commit_async(self.state.tick, self.epoch, now, self._expired(now))
                last_tick = now
            self._pump()

    # ---- intake ------------------------------------------------------------------------------------
    def _on_command(self, ch, method, properties, body) -> None:
        self.last_tag = method.delivery_tag
        try:
            msg = json.loads(body)
            if not isinstance(msg, dict) or msg.get("kind") not in ("submit", "cancel", "retry"):
                raise ValueError("not a command")
            if msg["kind"] == "submit":
                job = msg["job"]
                if not isinstance(job, dict) or not isinstance(job.get("id"), str) or not isinstance(job.get("type"), str):
                    raise ValueError("submit without job id/type")
        except (ValueError, KeyError, TypeError) as e:
            self._dead_letter(body, f"malformed command: {e}", topo.COMMANDS)
            return
        self.pending.append(("cmd", msg))

    def _on_event(self, ch, method, properties, body) -> None:
        self.last_tag = method.delivery_tag
        try:
            msg = json.loads(body)
            if not isinstance(msg, dict):
                raise ValueError("not an object")
            kind = msg.get("kind")
        except ValueError as e:
            self._dead_letter(body, f"malformed event: {e}", topo.ORCH_EVENTS_Q)
            return
        if kind == "heartbeat":
            wid = str(msg.get("worker_id"))
            self.workers.set(wid, msg, float(msg.get("ts") or time.time()), wid)
            return
        if kind in ("started", "progress", "succeeded", "failed"):
            self.pending.append(("evt", msg))
        else:
            self._dead_letter(body, f"unknown event kind {kind!r}", topo.ORCH_EVENTS_Q)

    def _dead_letter(self, body: bytes, reason: str, source: str) -> None:
        # Unparseable input must not wedge the queue nor be lost: park it in tf.dead with why.
        log.warning("dead-lettering a message from %s: %s", source, reason)
        self.pub.publish(topo.DLX, topo.DEAD_Q, body,
                         props({"x-taskforce-reason": reason, "x-taskforce-source": source}))

    def _commit_batch(self, now: float) -> None:
        batch, tag = self.pending, self.last_tag
        self.pending = []
        cmds = [m for k, m in batch if k == "cmd"]
        evts = [m for k, m in batch if k == "evt"]
        self._commit(self.state.apply, self.epoch, now, cmds, evts)
        # Only now is it safe to ack: everything up to `tag` is in the committed log.
        self._ack(tag)

    def _ack(self, tag: int) -> None:
        # Waiting for confirms lets pika deliver more messages; their tags are above `tag`
        # and stay unacked until their own batch commits.
        self.pub.wait(self.raft.commit_timeout_s)   # dead-lettered input must be safe first
        self.ch.basic_ack(tag, multiple=True)
        self.acked_tag = tag

    # ---- deadlines ------------------------------------------------------------------------------
    def _expired(self, now: float) -> list[tuple[str, int, int]]:
        grace = self.raft.heartbeat_grace_s
        if now - self.became_leader_at < grace:
            return []   # heartbeats have not had time to arrive since we took over
        alive_holding: set[str] = set()
        for _, hb in self.workers.items():
            if float(hb.get("ts") or 0) >= now - grace:
                alive_holding.update(hb.get("in_flight") or [])
        out = []
        with self.state.lock:
            s = self.state.s
            for jid, started in s.running.items():
                j = s.jobs.get(jid)
                if j is None or now < started + j["timeout_s"] + grace:
                    continue
                if jid in alive_holding:
                    continue
                out.append((jid, j["attempt"], j["generation"]))
        self.workers.prune_older_than(now - 600)
        return out[:1000]

    # ---- the outbox -----------------------------------------------------------------------------
    def _pump(self) -> None:
        with self.state.lock:
            # pysyncobj can apply a newer leader's entries on its own thread between our
            # is_leader() check and this read; its dispatches would then go out twice, once from
            # each leader. Its begin_epoch precedes them in the log, so a newer epoch in the state
            # is the fence: a window read while the epoch is still ours holds none of them.
            if self.state.s.epoch != self.epoch:
                raise StepDown(f"epoch {self.state.s.epoch} committed by another leader")
            window = [e for e in self.state.s.outbox if e[0] > self.published_upto][:2000]
            if not window:
                return
            if (time.time() - self.became_leader_at < REPUBLISH_GRACE_S
                    and any(e[0] <= self.inherited_upto and e[1] == DISPATCH for e in window)):
                return
            # After a failover the outbox above the watermark is republished; a dispatch whose
            # attempt the state already shows started, cancelled or superseded would only run
            # twice (or at all), so it is skipped, and acked with the rest of the window.
            jobs = self.state.s.jobs
            todo = [e for e in window if e[1] != DISPATCH or _still_queued(jobs.get(e[2]["id"]), e[2])]
        upto = window[-1][0]
        for seq, kind, data in todo:
            if kind == DISPATCH:
                q = data["lane_queue"]
                if q not in self.lanes_declared:
                    topo.declare_lanes(self.ch, data["queue"])
                    self.lanes_declared.update(topo.lane_names(data["queue"]))
                msg = {k: v for k, v in data.items() if k != "lane_queue"}
                self.pub.publish(topo.JOBS_X, q, dumps(msg), props(), mandatory=True)
            elif kind == DEAD:
                job = {k: v for k, v in data["job"].items() if k != "lane_queue"}
                self.pub.publish(topo.DLX, topo.DEAD_Q, dumps(job),
                                       props({"x-taskforce-reason": data["reason"], "x-taskforce-source": "orchestrator"}))
            elif kind == EVENT:
                # Events feed gateway views, which merge through the status lattice, so a replay
                # after a failover is harmless; confirms here would only slow the hot path.
                publish_unflushed(self.evpub, topo.EVENTS_X, f"job.{data['phase']}", dumps(data), props())
            elif kind == CONTROL:
                publish_unflushed(self.evpub, topo.CONTROL_X, "", dumps(data), props())
        self.pub.wait(self.raft.commit_timeout_s)
        self.published_upto = upto
        self._commit_async(self.state.outbox_ack, self.epoch, self.published_upto)


def _still_queued(job: Optional[dict], msg: dict) -> bool:
    return (job is not None and job["status"] == "queued" and job["attempt"] == msg["attempt"]
            and job["generation"] == msg["generation"])
