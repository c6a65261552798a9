"""The gateway's private feed: committed job events and worker heartbeats.

A classic exclusive queue, because this is a cache feed that dies with the gateway; the
durable truth is in the Raft state, which the gateway reads on a miss.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import OrderedDict, deque
from typing import Any, Optional

from ..amqp import topology as topo
from ..amqp.connection import connect_forever
from ..config import AmqpConfig
from ..crdt import JobStatus, LWWMap
from ..model import Phase

log = logging.getLogger("taskforce.gateway")


class JobView:
    """Latest known record per job, merged through the status lattice so that duplicated or
    reordered events never move a job backwards. Bounded: least recently updated go first."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self.records: "OrderedDict[str, tuple[JobStatus, dict]]" = OrderedDict()

    def merge(self, rec: dict) -> bool:
        st = JobStatus(int(rec.get("generation", 0)), int(rec.get("attempt", 0)), Phase(rec["status"]))
        cur = self.records.get(rec["id"])
        if cur is not None:
            old_st, old = cur
            if st.key() < old_st.key():
                return False   # behind in the lattice: a late or duplicated event
            if st == old_st and rec.get("updated_at", 0) <= old.get("updated_at", 0):
                return False   # same status, nothing newer (such as progress) to show

        self.records[rec["id"]] = (st, rec)
        self.records.move_to_end(rec["id"])
        while len(self.records) > self.capacity:
            self.records.popitem(last=False)
        return True

    def get(self, jid: str) -> Optional[dict]:
        cur = self.records.get(jid)
        return None if cur is None else cur[1]


class Hub:
    """Fan-out of events to SSE subscribers on the event loop, with a replay buffer for Last-Event-ID."""

    def __init__(self, buffer: int = 20_000) -> None:
        self.buffer: deque[dict] = deque(maxlen=buffer)
        self.subscribers: set[asyncio.Queue] = set()
        self.max_seq = 0

    def publish(self, ev: dict) -> None:
        seq = int(ev.get("seq", 0))
        if seq <= self.max_seq:
            return  # replay after an orchestrator failover; already delivered
        self.max_seq = seq
        self.buffer.append(ev)
        for q in list(self.subscribers):
            if q.qsize() < 10_000:
                q.put_nowait(ev)
            # else: a stalled client; it loses live events but can resume with Last-Event-ID

    def since(self, seq: int) -> Optional[list[dict]]:
        """Events after seq, or None when the buffer no longer reaches back that far."""
        if self.buffer and self.buffer[0]["seq"] > seq + 1:
            return None
        return [e for e in self.buffer if e["seq"] > seq]


class Feed:
    def __init__(self, cfg: AmqpConfig, name: str, loop: asyncio.AbstractEventLoop, view: JobView, hub: Hub) -> None:
        self.cfg, self.name, self.loop, self.view, self.hub = cfg, name, loop, view, hub
        self.workers = LWWMap()
        self.connected = threading.Event()
        self.listening_since: float | None = None   # monotonic, the first time the feed consumed
        self.received = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="feed")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop = True

    def _deliver(self, ev: dict) -> None:
        rec = ev.get("record")
        if isinstance(rec, dict) and "id" in rec:
            self.view.merge(rec)
        self.hub.publish(ev)

    def _on_message(self, ch, method, properties, body) -> None:
        self.received += 1
        try:
            msg = json.loads(body)
        except ValueError:
            return
        if method.exchange == topo.WORKER_EVENTS_X:
            wid = str(msg.get("worker_id"))
            self.workers.set(wid, msg, float(msg.get("ts") or 0), wid)
        else:
            self.loop.call_soon_threadsafe(self._deliver, msg)

    def _run(self) -> None:
        while not self._stop:
            conn = connect_forever(self.cfg, f"{self.name}-feed", lambda: self._stop)
            if conn is None:
                return
            try:
                ch = conn.channel()
                topo.declare_core(ch)
                q = ch.queue_declare("", exclusive=True, auto_delete=True,
                                     arguments={"x-max-length": 200_000, "x-overflow": "drop-head"}).method.queue
                ch.queue_bind(q, topo.EVENTS_X, routing_key="#")
                ch.queue_bind(q, topo.WORKER_EVENTS_X, routing_key="heartbeat")
                ch.basic_consume(q, self._on_message, auto_ack=True)
                self.connected.set()
                if self.listening_since is None:
                    self.listening_since = time.monotonic()
                while not self._stop:
                    conn.process_data_events(time_limit=0.5)
                    self.workers.prune_older_than(time.time() - 300)
            except Exception as e:
                log.warning("event feed lost: %r; reconnecting", e)
            finally:
                self.connected.clear()
                try:
                    conn.close()
                except Exception:
                    pass
            time.sleep(0.5)

    def workers_known(self, warmup_s: float) -> bool:
        """Whether the feed can speak for the workers: it has listened for `warmup_s`, long
        enough for every live worker's heartbeat to arrive. One heartbeat is not enough: the
        first to arrive may be from workers of only one language."""
        return self.listening_since is not None and time.monotonic() - self.listening_since >= warmup_s

    def worker_list(self, now: float, stale_after: float = 10.0) -> list[dict[str, Any]]:
        out = []
        for wid, hb in self.workers.items():
            hb = dict(hb)
            hb["alive"] = float(hb.get("ts") or 0) >= now - stale_after
            out.append(hb)
        return out
