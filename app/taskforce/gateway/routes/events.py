"""Server-Sent Events: every job event, or one job's. Event ids are the Raft-assigned
sequence numbers, so Last-Event-ID resumes from the gateway's replay buffer."""
from __future__ import annotations

import asyncio
import json
from typing import Optional

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse

from ...model import Phase
from .. import metrics
from ..auth import Principal, require
from .jobs import find

router = APIRouter(prefix="/v1", tags=["events"])
KEEPALIVE_S = 15.0


def frame(ev: dict, name: str = "job") -> str:
    return f"id: {ev.get('seq', 0)}\nevent: {name}\ndata: {json.dumps(ev, separators=(',', ':'))}\n\n"


async def stream(request: Request, match, last_event_id: Optional[str], first: Optional[dict] = None,
                 until_terminal: bool = False):
    hub = request.app.state.hub
    q: asyncio.Queue = asyncio.Queue()
    hub.subscribers.add(q)
    metrics.SSE_STREAMS.inc()
    try:
        yield "retry: 2000\n\n"
        backlog = None
        if last_event_id and last_event_id.isdigit():
            backlog = hub.since(int(last_event_id))
            if backlog is None:
                yield "event: reset\ndata: {\"reason\": \"Last-Event-ID is older than this gateway's buffer\"}\n\n"
        if first is not None and not backlog:
            yield frame(first, "snapshot")
            if until_terminal and Phase(first["record"]["status"]).terminal:
                return
        sent = 0
        for ev in backlog or []:
            if match(ev):
                sent = max(sent, ev["seq"])
                yield frame(ev)
        while True:
            try:
                ev = await asyncio.wait_for(q.get(), KEEPALIVE_S)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    return
                yield ": keepalive\n\n"
                continue
            if ev is None:   # the gateway is shutting down
                yield "event: close\ndata: {}\n\n"
                return
            if ev["seq"] <= sent or not match(ev):
                continue
            yield frame(ev)
            if until_terminal and Phase(ev["phase"]).terminal:
                return
    finally:
        hub.subscribers.discard(q)
        metrics.SSE_STREAMS.dec()


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.get("/events")
async def all_events(request: Request, status: Optional[Phase] = None, type: Optional[str] = None,
                     queue: Optional[str] = None, last_event_id: Optional[str] = Header(None),
                     _: Principal = Depends(require("read"))):
    def match(ev: dict) -> bool:
        rec = ev.get("record") or {}
        return ((status is None or ev.get("phase") == status.value) and
                (type is None or rec.get("type") == type) and (queue is None or rec.get("queue") == queue))

    return StreamingResponse(stream(request, match, last_event_id), media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("/jobs/{jid}/events")
async def job_events(jid: str, request: Request, last_event_id: Optional[str] = Header(None),
                     _: Principal = Depends(require("read"))):
    """Starts with a `snapshot` of the job, then each transition; ends after a terminal one."""
    rec = await find(request, jid)   # 404 before the stream starts
    first = {"seq": 0, "job_id": jid, "phase": rec["status"], "attempt": rec.get("attempt", 0),
             "generation": rec.get("generation", 0), "record": rec}
    return StreamingResponse(stream(request, lambda ev: ev.get("job_id") == jid, last_event_id, first, True),
                             media_type="text/event-stream", headers=SSE_HEADERS)
