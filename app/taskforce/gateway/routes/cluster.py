"""/v1/cluster and /v1/workers: what the cluster looks like from this gateway."""
from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Depends, Request

from ...amqp import topology as topo
from ...config import split_hostport
from ..auth import Principal, require

router = APIRouter(prefix="/v1", tags=["cluster"])


async def _reachable(host: str, port: int) -> bool:
    try:
        _, w = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
        w.close()
        return True
    except (OSError, asyncio.TimeoutError):
        return False


def _depths(cfg, queues: list[str]) -> dict:
    """Queue depths by passive declare, on a short-lived connection of its own."""
    from ...amqp.connection import connect
    out: dict = {}
    conn = connect(cfg.amqp, "gateway-depths")
    try:
        for q in queues:
            ch = conn.channel()
            try:
                out[q] = ch.queue_declare(q, passive=True).method.message_count
                ch.close()
            except Exception:
                out[q] = None
    finally:
        conn.close()
    return out


@router.get("/cluster")
async def cluster(request: Request, _: Principal = Depends(require("read"))):
    st = request.app.state
    cfg = st.cfg
    orchs = await st.upstream.statuses()
    leaders = sorted({o.get("leader") for o in orchs if o.get("leader")})
    nodes = []
    for hp in cfg.amqp.hosts:
        h, p = split_hostport(hp, 5672)
        nodes.append({"address": hp, "reachable": await _reachable(h, p)})
    queues = {r["queue"] for _, r in st.view.records.values()} | {"default"}
    names = [topo.COMMANDS, topo.ORCH_EVENTS_Q, topo.DEAD_Q] + [n for q in sorted(queues) for n in topo.lane_names(q)]
    try:
        depths = await asyncio.to_thread(_depths, cfg, names)
    except Exception as e:
        depths = {"error": repr(e)}
    term = max((o.get("term") or 0 for o in orchs), default=0)
    leader_view = next((o for o in orchs if o.get("state") == "leader"), None)
    return {
        "raft": {"members": orchs, "leader": leaders[0] if len(leaders) == 1 else leaders, "term": term,
                 "commit_idx": leader_view.get("commit_idx") if leader_view else None},
        "rabbitmq": {"nodes": nodes, "queues": depths},
    }


@router.get("/workers")
async def workers(request: Request, _: Principal = Depends(require("read"))):
    return {"workers": request.app.state.feed.worker_list(time.time())}
