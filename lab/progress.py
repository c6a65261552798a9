"""One line per step, each stamped with the seconds since the command began."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator


class Progress:
    def __init__(self, stream=None) -> None:
        self.started = time.monotonic()
        self.stream = stream

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, message: str) -> None:
        print(f"[{self.elapsed():6.1f}s] {message}", file=self.stream or sys.stdout, flush=True)

    @contextmanager
    def step(self, message: str) -> Iterator[None]:
        began = time.monotonic()
        self.say(f"{message} ...")
        yield
        self.say(f"{message}: done in {time.monotonic() - began:.1f}s")
