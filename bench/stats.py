"""Latency percentiles, windowed throughput and CPU per 1,000 jobs: pure functions."""
from __future__ import annotations

import math
from typing import Iterable, Mapping, Optional, Sequence


def percentile(xs: Sequence[float], p: float) -> Optional[float]:
    """Nearest-rank percentile (p in 0..100); None for no samples."""
    if not xs:
        return None
    s = sorted(xs)
    k = max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))
    return s[k]


def throughput(done_times: Iterable[float], t_from: float, t_to: float) -> float:
    """Completions per second whose completion time falls in [t_from, t_to)."""
    if t_to <= t_from:
        raise ValueError("empty window")
    return sum(1 for t in done_times if t_from <= t < t_to) / (t_to - t_from)


def latencies(submitted: Mapping[str, float], stamps: Mapping[str, tuple[float, float]]) -> dict:
    """submit->start and submit->done in ms, p50/p99, over the jobs that have both ends.

    `submitted`: job id -> client time before the submit call; `stamps`: id -> (start, done)."""
    to_start, to_done = [], []
    for jid, t in submitted.items():
        st = stamps.get(jid)
        if st is None:
            continue
        to_start.append(1000 * (st[0] - t))
        to_done.append(1000 * (st[1] - t))
    out = {"jobs": len(submitted), "completed": len(to_start)}
    for name, xs in (("submit_to_start", to_start), ("submit_to_done", to_done)):
        for p in (50, 99):
            v = percentile(xs, p)
            out[f"{name}_p{p}_ms"] = None if v is None else round(v, 2)
    return out


def cpu_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """CPU seconds per component between two readings; a component missing in either is skipped."""
    return {k: after[k] - before[k] for k in after if k in before and after[k] >= before[k]}


def cpu_per_1000(cpu_s: Mapping[str, float], jobs: int) -> dict[str, float]:
    """CPU seconds per 1,000 jobs, per component and in total."""
    if jobs <= 0:
        return {}
    out = {k: round(1000 * v / jobs, 3) for k, v in sorted(cpu_s.items())}
    out["total"] = round(1000 * sum(cpu_s.values()) / jobs, 3)
    return out


def group_cpu(cpu_s: Mapping[str, float]) -> dict[str, float]:
    """Sum per-node readings ('core1/rabbitmq') into components ('rabbitmq')."""
    out: dict[str, float] = {}
    for k, v in cpu_s.items():
        comp = k.split("/", 1)[-1]
        out[comp] = out.get(comp, 0.0) + v
    return out


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if not a or not b else round(a / b, 3)


def mean(xs: Iterable[Optional[float]]) -> Optional[float]:
    ys = [x for x in xs if x is not None]
    return sum(ys) / len(ys) if ys else None
