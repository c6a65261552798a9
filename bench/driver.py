"""Load: closed-loop saturation (keep `window` jobs in flight; measure completions over a
window after a warm-up) and paced open-loop submission at a fixed rate (for latency)."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Optional

from .lab import say
from .systems import System, wait_for


@dataclass
class Load:
    """What one load phase did: submit times per job and the measurement window."""
    submitted: dict[str, float] = field(default_factory=dict)
    t_start: float = 0.0
    t_from: float = 0.0
    t_to: float = 0.0
    errors: int = 0
    drained: bool = True


def saturate(sys_: System, warmup: float, duration: float, window: int,
             at_window: Optional[Callable[[str], None]] = None, drain_s: float = 60.0) -> Load:
    """Keep up to `window` jobs in flight from `sys_.clients` threads for warmup+duration
    seconds. at_window('from'|'to') is called at the edges of the measured window (CPU readings)."""
    load = Load()
    lock = threading.Lock()
    stop = threading.Event()

    def client(i: int) -> None:
        while not stop.is_set():
            with lock:
                room = window - (len(load.submitted) - sys_.completed())
            if room < sys_.batch:
                time.sleep(0.005)
                continue
            try:
                got = sys_.submit_batch(i, sys_.batch)
            except Exception as e:
                with lock:
                    load.errors += 1
                if load.errors <= 3:
                    say(f"{sys_.name}: submit failed: {e!r}")
                time.sleep(0.2)
                continue
            with lock:
                load.submitted.update(got)

    threads = [threading.Thread(target=client, args=(i,), daemon=True, name=f"{sys_.name}-client{i}")
               for i in range(sys_.clients)]
    load.t_start = time.time()
    for t in threads:
        t.start()
    _progress_until(sys_, load, load.t_start + warmup, "warm-up")
    load.t_from = time.time()
    if at_window:
        at_window("from")
    _progress_until(sys_, load, load.t_from + duration, "measuring")
    load.t_to = time.time()
    if at_window:
        at_window("to")
    stop.set()
    for t in threads:
        t.join(60)
    load.drained = wait_for(lambda: sys_.completed() >= len(load.submitted), drain_s, 0.5)
    if not load.drained:
        say(f"{sys_.name}: {len(load.submitted) - sys_.completed()} jobs still open after {drain_s:.0f} s")
    return load


def _progress_until(sys_: System, load: Load, t_end: float, phase: str) -> None:
    last_done, last_t = sys_.completed(), time.time()
    while True:
        left = t_end - time.time()
        if left <= 0:
            return
        time.sleep(min(5.0, left))
        done, now = sys_.completed(), time.time()
        say(f"  {sys_.name} {phase}: {len(load.submitted)} submitted, {done} done, "
            f"{(done - last_done) / max(1e-6, now - last_t):.0f}/s")
        last_done, last_t = done, now


def paced(sys_: System, rate: float, duration: float, threads: int = 16, drain_s: float = 60.0) -> Load:
    """Submit one job every 1/rate seconds for `duration` (open loop: a slow submit does not
    delay the next one's schedule), one job per call, from a pool of threads."""
    load = Load()
    lock = threading.Lock()
    n = max(1, int(rate * duration))
    load.t_start = load.t_from = time.time()

    def one(k: int) -> None:
        delay = load.t_start + k / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        try:
            jid, t = sys_.submit_one(k % threads)
        except Exception as e:
            with lock:
                load.errors += 1
            if load.errors <= 3:
                say(f"{sys_.name}: submit failed: {e!r}")
            return
        with lock:
            load.submitted[jid] = t

    with ThreadPoolExecutor(threads, thread_name_prefix=f"{sys_.name}-paced") as ex:
        for k in range(n):
            # Hand jobs to the pool just ahead of their time so that the queue stays short.
            ahead = load.t_start + k / rate - time.time() - 0.5
            if ahead > 0:
                time.sleep(ahead)
            ex.submit(one, k)
    load.t_to = time.time()
    load.drained = wait_for(lambda: sys_.completed() >= len(load.submitted), drain_s, 0.5)
    return load
