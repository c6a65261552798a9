"""Pipelined publisher confirms on a BlockingConnection.

pika's blocking channel waits for each confirm before the next publish, which on quorum
queues (every confirm waits for a replicated, fsynced write) caps a publisher at a few
hundred messages a second. This publishes a batch, then waits once for all of its confirms:
the same guarantee, one round trip per batch instead of per message.
"""
from __future__ import annotations

import time
from typing import Optional

import pika
import pika.spec


class PublishFailed(Exception):
    """The broker nacked, returned (unroutable) or did not confirm a message in time."""


class ConfirmBatch:
    def __init__(self, conn: pika.BlockingConnection, ch=None) -> None:
        self.conn = conn
        self.ch = ch or conn.channel()
        # The blocking wrapper has no batch mode; the channel underneath has.
        self._impl = self.ch._impl
        self._pending: set[int] = set()
        self._sent_at: dict[int, float] = {}
        self._tag = 0
        self._nacked = 0
        self._returned = 0
        ready: list[bool] = []
        self._impl.confirm_delivery(self._on_confirm, callback=lambda _f: ready.append(True))
        self._impl.add_on_return_callback(self._on_return)
        conn._flush_output(lambda: bool(ready))

    def _on_confirm(self, frame) -> None:
        m = frame.method
        tags = [t for t in self._pending if t <= m.delivery_tag] if m.multiple else [m.delivery_tag]
        for t in tags:
            self._pending.discard(t)
            self._sent_at.pop(t, None)
        if isinstance(m, pika.spec.Basic.Nack):
            self._nacked += len(tags)

    def _on_return(self, *_args) -> None:
        self._returned += 1

    def publish(self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties,
                mandatory: bool = False) -> None:
        self._impl.basic_publish(exchange, routing_key, body, properties, mandatory)
        self._tag += 1
        self._pending.add(self._tag)
        self._sent_at[self._tag] = time.monotonic()

    @property
    def outstanding(self) -> int:
        return len(self._pending)

    @property
    def sequence(self) -> int:
        """The number of the last message published on this channel (the first is 1)."""
        return self._tag

    def confirmed_through(self, timeout: float = 30.0) -> int:
        """Without waiting: the highest number up to which every publish is confirmed. Raises
        as `wait` does on a refusal, or when the oldest outstanding publish is over `timeout`
        seconds old. Confirms arrive during the connection's ordinary I/O."""
        self._raise_refused()
        if not self._pending:
            return self._tag
        oldest = min(self._pending)
        if time.monotonic() - self._sent_at.get(oldest, time.monotonic()) > timeout:
            raise PublishFailed(f"{len(self._pending)} publishes not confirmed within {timeout}s")
        return oldest - 1

    def wait(self, timeout: float = 10.0) -> None:
        """Return once everything published so far is confirmed; raise if any was not."""
        if self._pending:
            expired: list[bool] = []
            # process_data_events(time_limit) would sleep out its whole limit, because these
            # callbacks live below the blocking layer; _flush_output returns as soon as the
            # last confirm arrives, and the timer bounds the wait.
            impl = self.conn._impl
            timer = impl._adapter_call_later(timeout, lambda: expired.append(True))
            try:
                self.conn._flush_output(lambda: not self._pending, lambda: bool(expired))
            finally:
                impl._adapter_remove_timeout(timer)
            if self._pending:
                raise PublishFailed(f"{len(self._pending)} publishes not confirmed within {timeout}s")
        self._raise_refused()

    def _raise_refused(self) -> None:
        nacked, returned = self._nacked, self._returned
        self._nacked = self._returned = 0
        if nacked or returned:
            raise PublishFailed(f"broker refused {nacked} and could not route {returned} messages")


def publish_unflushed(ch, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties) -> None:
    """Publish without confirm and without flushing the socket per message (the blocking
    wrapper flushes after every publish, which dominated the leader's profile). The bytes go
    out on the connection's next I/O, such as the next confirm wait or process_data_events."""
    ch._impl.basic_publish(exchange, routing_key, body, properties)
