"""The history: one JSON object per line, each with a wall-clock time `t` and a `type`.

Recorded while a drill runs, by many threads at once; read back whole by the checker.
Every kind of entry the drills write is listed in docs/drills.md.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Optional


class History:
    """Append-only, thread-safe, kept in memory and mirrored to a JSONL file as it grows,
    so that a drill that dies half-way still leaves its history behind."""

    def __init__(self, path: Optional[Path] = None) -> None:
        self.entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._fh = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(path, "w", buffering=1)

    def add(self, type_: str, t: Optional[float] = None, **fields: Any) -> dict[str, Any]:
        entry = {"t": time.time() if t is None else t, "type": type_, **fields}
        line = json.dumps(entry, separators=(",", ":"), default=str)
        with self._lock:
            self.entries.append(entry)
            if self._fh is not None:
                self._fh.write(line + "\n")
        return entry

    def of(self, type_: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.entries if e["type"] == type_]

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.entries)

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


def load(path: Path) -> list[dict[str, Any]]:
    out = []
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line:
                out.append(json.loads(line))
    return out


def dump(entries: Iterable[dict[str, Any]], path: Path) -> None:
    with open(path, "w") as fh:
        for e in entries:
            fh.write(json.dumps(e, separators=(",", ":"), default=str) + "\n")
