"""Confirmed publishing of commands from async request handlers.

pika's BlockingConnection is not thread-safe and blocks, so each of a few threads owns one
connection; handlers hand work over and await a future that resolves on the broker's
publisher confirm. 202 is only ever answered after that confirm.
"""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Optional

from ..amqp import topology as topo
from ..amqp.confirms import ConfirmBatch
from ..amqp.connection import connect, dumps, props
from ..config import AmqpConfig

log = logging.getLogger("taskforce.gateway")


class BrokerUnavailable(Exception):
    """No broker node accepted the publish; the client should retry later (503)."""


class Publisher:
    def __init__(self, cfg: AmqpConfig, name: str, threads: int = 4) -> None:
        self.cfg = cfg
        self.name = name
        self.q: "queue.Queue[Optional[tuple[list[dict], Future]]]" = queue.Queue()
        self.connected = threading.Event()
        self._stop = False
        self._local = threading.local()   # each thread owns one connection: pika is not thread-safe
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True, name=f"publisher-{i}")
                         for i in range(threads)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop = True
        for _ in self._threads:
            self.q.put(None)

    async def publish(self, commands: list[dict], timeout: float) -> None:
        fut: Future = Future()
        self.q.put((commands, fut))
        try:
            await asyncio.wait_for(asyncio.wrap_future(fut), timeout)
        except asyncio.TimeoutError:
            raise BrokerUnavailable("the broker did not confirm in time") from None

    def _run(self, idx: int) -> None:
        self._local.conn = self._local.ch = None
        self._local.down_until = 0.0
        while not self._stop:
            try:
                item = self.q.get(timeout=1.0)
            except queue.Empty:
                self._service_heartbeats()
                continue
            if item is None:
                break
            # Group commit: whatever else is waiting goes out in the same confirm round trip.
            group = [item]
            while len(group) < 256:
                try:
                    nxt = self.q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._stop = True
                    break
                group.append(nxt)
            group = [(cmds, fut) for cmds, fut in group if not fut.done()]
            if not group:
                continue
            # One retry on a fresh connection: a command that was published but whose confirm
            # got lost is harmless to repeat, because the schedule ignores a known job id.
            for attempt in (1, 2):
                try:
                    self._publish(idx, [c for cmds, _ in group for c in cmds])
                    for _, fut in group:
                        if not fut.done():
                            fut.set_result(True)
                    break
                except BrokerUnavailable as e:
                    self._fail(group, e)
                    break
                except Exception as e:
                    log.warning("publish failed (attempt %d): %r", attempt, e)
                    self._drop()
                    if attempt == 2:
                        self._fail(group, BrokerUnavailable(f"publish failed: {e!r}"))
        self._drop()

    def _fail(self, group, exc: Exception) -> None:
        self.connected.clear()
        for _, fut in group:
            if not fut.done():
                fut.set_exception(exc)

    def _publish(self, idx: int, commands: list[dict]) -> None:
        if self._local.ch is None or not self._local.conn.is_open:
            if time.monotonic() < self._local.down_until:
                raise BrokerUnavailable("broker unreachable (recently failed)")
            try:
                self._local.conn = connect(self.cfg, f"{self.name}-pub{idx}")
            except ConnectionError as e:
                self._local.down_until = time.monotonic() + 1.0
                raise BrokerUnavailable(str(e)) from None
            ch = self._local.conn.channel()
            topo.declare_core(ch)
            self._local.ch = ConfirmBatch(self._local.conn, ch)
            self.connected.set()
        for c in commands:
            self._local.ch.publish("", topo.COMMANDS, dumps(c), props(), mandatory=True)
        self._local.ch.wait(timeout=10.0)

    def _service_heartbeats(self) -> None:
        """A BlockingConnection only answers heartbeats when driven; an idle one would be dropped."""
        if self._local.conn is not None and self._local.conn.is_open:
            try:
                self._local.conn.process_data_events(time_limit=0)
            except Exception as e:
                log.info("idle publisher connection lost: %r", e)
                self._drop()

    def _drop(self) -> None:
        try:
            if self._local.conn is not None and self._local.conn.is_open:
                self._local.conn.close()
        except Exception:
            pass
        self._local.conn = self._local.ch = None
        self.connected.clear()
