"""Slots: one child process per concurrent job.

A handler runs in a child so that a hard timeout can really stop it (a thread cannot be
killed in Python) and so that a crashing handler cannot take the worker down. The parent
kills a slot whose job overran and starts a fresh one in its place.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any, Callable, Optional

Handler = Callable[[Any, "Context"], Any]

_ctx = mp.get_context("fork")   # handlers are registered in the parent; the child inherits them


class Context:
    """What a handler sees besides its payload."""

    def __init__(self, conn: Connection, job: dict, node: str, worker_id: str) -> None:
        self._conn = conn
        self.job_id: str = job["id"]
        self.attempt: int = job["attempt"]
        self.generation: int = job.get("generation", 0)
        self.node = node
        self.worker_id = worker_id
        self._cancelled = False

    def progress(self, fraction: float) -> None:
        self._conn.send(("progress", max(0.0, min(1.0, float(fraction)))))

    @property
    def cancelled(self) -> bool:
        """True once the job was cancelled; a cooperative handler checks this and returns early."""
        while not self._cancelled and self._conn.poll():
            if self._conn.recv() == ("cancel",):
                self._cancelled = True
        return self._cancelled


def _child(conn: Connection, handlers: dict[str, Handler], node: str, worker_id: str) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent decides when a drain ends
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg[0] != "run":
            continue
        job = msg[1]
        ctx = Context(conn, job, node, worker_id)
        try:
            result = handlers[job["type"]](job.get("payload"), ctx)
            conn.send(("done", result))
        except Exception as e:  # the handler's failure is the job's, not the worker's
            conn.send(("error", type(e).__name__, str(e)[:2000], traceback.format_exc(limit=5)[-4000:]))


class Slot:
    def __init__(self, index: int, handlers: dict[str, Handler], node: str, worker_id: str) -> None:
        self.index = index
        self._args = (handlers, node, worker_id)
        self.job: Optional[dict] = None
        self.delivery: Any = None
        self.deadline = 0.0
        self.started = 0.0
        self._spawn()

    def _spawn(self) -> None:
        parent, child = _ctx.Pipe()
        self.proc = _ctx.Process(target=_child, args=(child, *self._args), daemon=True,
                                 name=f"taskforce-slot-{self.index}")
        self.proc.start()
        child.close()
        self.conn = parent

    @property
    def busy(self) -> bool:
        return self.job is not None

    def start(self, job: dict, delivery: Any) -> None:
        self.job, self.delivery = job, delivery
        self.started = time.monotonic()
        self.deadline = self.started + float(job["timeout_s"])
        self.conn.send(("run", job))

    def cancel(self) -> None:
        try:
            self.conn.send(("cancel",))
        except OSError:
            pass

    def finish(self) -> tuple[dict, Any]:
        out = (self.job, self.delivery)
        self.job = self.delivery = None
        return out

    def kill_and_respawn(self) -> None:
        try:
            os.kill(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.join(timeout=5)
        self.conn.close()
        self._spawn()

    def stop(self) -> None:
        try:
            self.conn.close()
        except OSError:
            pass
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=5)
