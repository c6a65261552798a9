"""State-based CRDTs: anything that may arrive twice, late or out of order merges through these.

Each type is a join-semilattice: ``merge`` is commutative, associative and idempotent
(tests/unit/test_crdt.py proves it with hypothesis). They hold plain data so that they
pickle into the Raft journal and travel as JSON.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .model import Phase

# Rank within one (generation, attempt). Terminal phases rank above everything of their
# generation whatever the attempt, so they absorb; among terminals a fixed order decides.
_RANK = {
    Phase.PENDING: 0,
    Phase.QUEUED: 1,
    Phase.RUNNING: 2,
    Phase.FAILED: 3,
    Phase.CANCELLED: 4,
    Phase.DEAD: 5,
    Phase.SUCCEEDED: 6,
}


@dataclass(frozen=True, order=False)
class JobStatus:
    """A point in the job-status lattice.

    ``generation`` only grows through an operator's retry (a Raft decision), which is the one
    way a terminal job moves on. Within a generation a terminal phase is absorbing, and
    otherwise (attempt, phase) only moves forward, so a redelivered or reordered event can
    never move a job backwards.
    """

    generation: int = 0
    attempt: int = 0
    phase: Phase = Phase.PENDING

    def key(self) -> tuple[int, int, int, int]:
        terminal = 1 if self.phase.terminal else 0
        return (self.generation, terminal, self.attempt, _RANK[self.phase])

    def merge(self, other: "JobStatus") -> "JobStatus":
        # key() is injective, so the order is total and max() is a join.
        return self if self.key() >= other.key() else other

    def __le__(self, other: "JobStatus") -> bool:
        return self.key() <= other.key()


@dataclass(frozen=True)
class LWWEntry:
    ts: float
    origin: str
    value: Any


@dataclass
class LWWMap:
    """Last-writer-wins map (the worker registry): per key, the entry with the newest
    (timestamp, origin) wins; origin breaks timestamp ties so merge stays deterministic."""

    entries: dict[str, LWWEntry] = field(default_factory=dict)

    def set(self, key: str, value: Any, ts: float, origin: str) -> None:
        self.merge_entry(key, LWWEntry(ts, origin, value))

    def merge_entry(self, key: str, entry: LWWEntry) -> None:
        cur = self.entries.get(key)
        if cur is None or _lww_key(entry) > _lww_key(cur):
            self.entries[key] = entry

    def merge(self, other: "LWWMap") -> "LWWMap":
        out = LWWMap(dict(self.entries))
        for k, e in other.entries.items():
            out.merge_entry(k, e)
        return out

    def get(self, key: str) -> Any:
        e = self.entries.get(key)
        return None if e is None else e.value

    def items(self):
        return ((k, e.value) for k, e in sorted(self.entries.items()))

    def prune_older_than(self, ts: float) -> None:
        """Forget entries not refreshed since ts. Local housekeeping, not part of the merge."""
        for k in [k for k, e in self.entries.items() if e.ts < ts]:
            del self.entries[k]


def _lww_key(e: LWWEntry) -> tuple[float, str, str]:
    # value repr is a last resort tie-break so that two writes at the same (ts, origin) merge
    # the same way on every replica.
    return (e.ts, e.origin, repr(e.value))


@dataclass
class GCounter:
    """Grow-only counter: one monotone count per node; the value is their sum."""

    counts: dict[str, int] = field(default_factory=dict)

    def incr(self, node: str, n: int = 1) -> None:
        if n < 0:
            raise ValueError("a G-counter only grows")
        self.counts[node] = self.counts.get(node, 0) + n

    def merge(self, other: "GCounter") -> "GCounter":
        keys = set(self.counts) | set(other.counts)
        return GCounter({k: max(self.counts.get(k, 0), other.counts.get(k, 0)) for k in keys})

    @property
    def value(self) -> int:
        return sum(self.counts.values())
