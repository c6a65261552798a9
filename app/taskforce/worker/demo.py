"""Demo handlers that the tests, drills and benchmarks use. The Java worker implements the
same shared types with the same results (app/schemas/vectors/contract)."""
from __future__ import annotations

import json
import platform
import sys
import time


class PlannedFailure(RuntimeError):
    pass


def _log_exec(ctx) -> None:
    # One line per execution, so a drill can count duplicate executions from the journal.
    # One write() per line: slots share stdout, and two writes from two slots can interleave.
    line = json.dumps({"exec": ctx.job_id, "attempt": ctx.attempt, "node": ctx.node, "worker_id": ctx.worker_id})
    sys.stdout.write(line + "\n")   # one string, one write: the newline is not a second call
    sys.stdout.flush()


def noop(payload, ctx):
    _log_exec(ctx)
    return {}


def echo(payload, ctx):
    _log_exec(ctx)
    return payload


class _Cancelled(Exception):
    pass


_Cancelled.__name__ = "Cancelled"


def sleep(payload, ctx):
    _log_exec(ctx)
    seconds = float((payload or {}).get("seconds", 1))
    end = time.monotonic() + seconds
    steps = 0
    while time.monotonic() < end:
        if ctx.cancelled:
            raise _Cancelled("cancelled cooperatively")
        time.sleep(min(0.1, max(0.0, end - time.monotonic())))
        steps += 1
        if steps % 10 == 0:
            ctx.progress(1 - max(0.0, end - time.monotonic()) / seconds)
    return {"slept": seconds}


def fail(payload, ctx):
    _log_exec(ctx)
    p = payload or {}
    n = int(p.get("fail_times", 1 << 30))
    # fail_generations (optional) limits the failures to the first G generations, so that an
    # operator's retry of a dead job can be shown to succeed.
    if ctx.attempt <= n and ctx.generation < int(p.get("fail_generations", 1 << 30)):
        raise PlannedFailure("planned failure")
    return {"attempt": ctx.attempt}


def cpu(payload, ctx):
    _log_exec(ctx)
    n = int((payload or {}).get("n", 100_000))
    return {"sum": sum(i * i for i in range(n))}


def hang(payload, ctx):
    _log_exec(ctx)
    while True:   # ignores cancellation on purpose: only the hard timeout stops it
        time.sleep(3600)


def py_info(payload, ctx):
    """Served only by Python workers: proves routing by capability."""
    _log_exec(ctx)
    return {"lang": "python", "python_version": platform.python_version(), "implementation": sys.implementation.name}


HANDLERS = {"noop": noop, "echo": echo, "sleep": sleep, "fail": fail, "cpu": cpu, "hang": hang, "py_info": py_info}


def register(worker) -> None:
    for name, fn in HANDLERS.items():
        worker.handler(name)(fn)
