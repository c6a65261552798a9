"""The gateway's memory under many open SSE streams: RSS before, with N streams open (and a
few jobs' events fanned out to all of them), and after they close."""
from __future__ import annotations

import asyncio
import time

import httpx

from .lab import Lab, say

GATEWAY_UNIT = "taskforce-gateway.service"


def _rss_kib(lab: Lab, node: str) -> int | None:
    return (lab.unit_readings(node, [GATEWAY_UNIT]).get(GATEWAY_UNIT) or {}).get("rss_kib")


async def _hold(url: str, token: str, n: int, hold_s: float, jobs: int) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=0)
    opened = 0
    frames = 0
    ready = asyncio.Event()
    stop = asyncio.Event()

    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits,
                                 timeout=httpx.Timeout(30, read=None)) as c:
        async def one() -> None:
            nonlocal opened, frames
            try:
                async with c.stream("GET", "/v1/events") as r:
                    r.raise_for_status()
                    opened += 1
                    if opened == n:
                        ready.set()
                    async for line in r.aiter_lines():
                        if line.startswith("data: "):
                            frames += 1
                        if stop.is_set():
                            return
            except (httpx.HTTPError, asyncio.CancelledError):
                return

        tasks = [asyncio.create_task(one()) for _ in range(n)]
        try:
            await asyncio.wait_for(ready.wait(), 60)
        except asyncio.TimeoutError:
            pass
        t_open = time.time()
        if jobs:
            await c.post("/v1/jobs/batch", json={"jobs": [{"type": "noop"}] * jobs})
        await asyncio.sleep(hold_s)
        result = {"opened": opened, "frames": frames, "held_s": round(time.time() - t_open, 1)}
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return result


def measure(lab: Lab, streams: int = 1000, hold_s: float = 20.0, jobs: int = 20) -> dict:
    node = lab.gateways[0]
    url = lab.gateway_urls()[0]
    before = _rss_kib(lab, node)
    say(f"gateway memory: RSS {before} KiB on {node}; opening {streams} SSE streams")
    box: dict = {}

    async def main() -> None:
        task = asyncio.create_task(_hold(url, lab.token, streams, hold_s, jobs))
        await asyncio.sleep(hold_s / 2 + 5)
        box["during"] = await asyncio.to_thread(_rss_kib, lab, node)
        box.update(await task)

    asyncio.run(main())
    time.sleep(5)
    after = _rss_kib(lab, node)
    out = {"node": node, "streams": streams, "opened": box.get("opened"), "frames_received": box.get("frames"),
           "jobs_during": jobs, "rss_before_kib": before, "rss_with_streams_kib": box.get("during"),
           "rss_after_kib": after}
    if before and box.get("during"):
        out["per_stream_kib"] = round((box["during"] - before) / max(1, box.get("opened") or 1), 1)
    say(f"gateway memory: before {before} KiB, with {box.get('opened')} streams {box.get('during')} KiB, after {after} KiB")
    return out
