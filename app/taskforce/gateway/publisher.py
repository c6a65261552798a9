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
from ..amqp.connection import CONNECT_ERRORS, connect, dumps, props
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
        conn = ch = None
        down_until = 0.0
        while not self._stop:
            item = self.q.get()
            if item is None:
                break
            commands, fut = item
            if fut.done():   # the handler gave up waiting
                continue
            try:
                if ch is None or not conn.is_open:
                    if time.monotonic() < down_until:
                        raise BrokerUnavailable("broker unreachable (recently failed)")
                    try:
                        conn = connect(self.cfg, f"{self.name}-pub{idx}")
                    except ConnectionError as e:
                        down_until = time.monotonic() + 1.0
                        raise BrokerUnavailable(str(e)) from None
                    ch = conn.channel()
                    topo.declare_core(ch)
                    ch.confirm_delivery()
                    self.connected.set()
                for c in commands:
                    ch.basic_publish("", topo.COMMANDS, dumps(c), props(), mandatory=True)
                fut.set_result(True)
            except BrokerUnavailable as e:
                self.connected.clear()
                fut.set_exception(e)
            except CONNECT_ERRORS + (Exception,) as e:
                log.warning("publish failed: %r", e)
                self.connected.clear()
                try:
                    if conn is not None and conn.is_open:
                        conn.close()
                except Exception:
                    pass
                conn = ch = None
                if not fut.done():
                    fut.set_exception(BrokerUnavailable(f"publish failed: {e!r}"))
        if conn is not None and conn.is_open:
            conn.close()
