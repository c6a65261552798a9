"""Reads of committed state from the orchestrators' read API."""
from __future__ import annotations

import asyncio
from typing import Any, Optional

import httpx


class OrchestratorsUnavailable(Exception):
    pass


class Upstream:
    def __init__(self, urls: list[str], token: str) -> None:
        self.urls = list(urls)
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(3.0, connect=1.0),
                                        headers={"Authorization": f"Bearer {token}"})
        self.preferred = 0   # index of the last one that answered as leader

    async def close(self) -> None:
        await self.client.aclose()

    async def get(self, path: str, params: Optional[dict] = None) -> tuple[int, Any]:
        """GET from the leader if we know it, else from whoever answers first in order."""
        order = self.urls[self.preferred:] + self.urls[:self.preferred]
        last: Optional[Exception] = None
        for url in order:
            try:
                r = await self.client.get(url.rstrip("/") + path, params=params)
            except httpx.HTTPError as e:
                last = e
                continue
            return r.status_code, r.json()
        raise OrchestratorsUnavailable(f"no orchestrator answered: {last!r}")

    async def statuses(self) -> list[dict]:
        async def one(url: str) -> dict:
            try:
                r = await self.client.get(url.rstrip("/") + "/status")
                d = r.json()
                d["url"] = url
                return d
            except (httpx.HTTPError, ValueError) as e:
                return {"url": url, "error": repr(e)}
        out = await asyncio.gather(*(one(u) for u in self.urls))
        for i, d in enumerate(out):
            if d.get("state") == "leader":
                self.preferred = i
        return list(out)
