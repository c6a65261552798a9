"""Which job deliveries a worker may ack, given how far the broker has confirmed its publishes.

A job message is acked only after the outcome published for it is confirmed: a crash in
between means a redelivery, never a loss. Waiting for each confirm before taking the next job
left every slot idle for one replicated quorum-queue write per result; instead each delivery
waits here for the publish sequence number it needs, and the worker loop keeps running jobs.
"""
from __future__ import annotations

from typing import Any, Hashable, Optional


class PendingAcks:
    def __init__(self) -> None:
        # (publish sequence to wait for, delivery tag, key to remember as reported). Few
        # entries (at most the slots plus the prefetch), so a list scan is cheapest.
        self._waiting: list[tuple[int, Any, Optional[Hashable]]] = []

    def add(self, tag: Any, after_seq: int, reported: Optional[Hashable] = None) -> None:
        """Ack `tag` once publishes up to `after_seq` are confirmed (0: nothing to wait for)."""
        self._waiting.append((after_seq, tag, reported))

    def ready(self, confirmed_through: int) -> list[tuple[Any, Optional[Hashable]]]:
        """Take the deliveries whose publishes are all confirmed, in the order they were added."""
        out = [(tag, key) for seq, tag, key in self._waiting if seq <= confirmed_through]
        if out:
            self._waiting = [w for w in self._waiting if w[0] > confirmed_through]
        return out

    def clear(self) -> None:
        self._waiting.clear()

    def __len__(self) -> int:
        return len(self._waiting)
