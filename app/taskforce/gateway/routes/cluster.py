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


DEPTHS_TIMEOUT_S = 2.0


async def _bounded_depths(st, cfg, names: list[str]) -> dict:
    """The depths, or an error after DEPTHS_TIMEOUT_S. A broker cut off from its peers holds a
    passive declare until the Erlang distribution gives up on them (net_ticktime, 20 s), and
    the Raft half of this answer must not wait for that: the failover drills read the new
    leader from it. A lookup that overran keeps its thread until the broker answers, so no
    second one starts meanwhile."""
    pending = getattr(st, "depths_pending", None)
    if pending is not None and not pending.done():
        return {"error": "the brokers have not answered the previous depth lookup yet"}
    st.depths_pending = asyncio.ensure_future(asyncio.to_thread(_depths, cfg, names))
    # Its outcome, once nobody waits for it any more, is read here rather than logged as lost.
    st.depths_pending.add_done_callback(lambda f: f.cancelled() or f.exception())
    try:
        return await asyncio.wait_for(asyncio.shield(st.depths_pending), DEPTHS_TIMEOUT_S)
    except asyncio.TimeoutError:
        return {"error": f"the brokers did not answer within {DEPTHS_TIMEOUT_S:.0f} s"}
    except Exception as e:
        return {"error": repr(e)}


@router.get("/cluster")
async def cluster(request: Request, _: Principal = Depends(require("read"))):
    st = request.app.state
    cfg = st.cfg
    queues = {r["queue"] for _, r in st.view.records.values()} | {"default"}
    names = [topo.COMMANDS, topo.ORCH_EVENTS_Q, topo.DEAD_Q] + [n for q in sorted(queues) for n in topo.lane_names(q)]
    # The Raft half and the broker half are asked at once: either may be slow during a fault.
    orchs, depths, *reachable = await asyncio.gather(
        st.upstream.statuses(), _bounded_depths(st, cfg, names),
        *(_reachable(*split_hostport(hp, 5672)) for hp in cfg.amqp.hosts))
    leaders = sorted({o.get("leader") for o in orchs if o.get("leader")})
    nodes = [{"address": hp, "reachable": r} for hp, r in zip(cfg.amqp.hosts, reachable)]
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
