"""/v1/jobs: submit, batch-submit, read, list, cancel, retry."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Optional

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse

from ...model import Accepted, BatchItem, BatchResult, BatchSpec, JobPage, JobRecord, JobSpec, Phase, lane_for
from .. import metrics
from ..auth import Principal, require
from ..publisher import BrokerUnavailable
from ..upstream import OrchestratorsUnavailable

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

# Ids minted from an Idempotency-Key are the same on every gateway, with no shared state.
IDEMPOTENCY_NS = uuid.UUID("6f1d2c43-5b8e-4f0a-9a51-7c2d3e4f5a6b")
RECENT_ACCEPTED = 50_000
# Routing by capability reads the workers' heartbeats (every 2 s by default). A gateway that
# has just started has not heard every worker yet, and would send a language-only type to
# `default`, where the other language can only fail it; so its unrouted submits wait until
# its feed has listened for two heartbeat periods.
ROUTE_WARMUP_S = 4.0


def unavailable(detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "1"})


def job_id(principal: Principal, key: Optional[str]) -> str:
    if key:
        return uuid.uuid5(IDEMPOTENCY_NS, f"{principal.name}\x00{key}").hex
    return uuid.uuid4().hex


async def await_workers_known(request: Request, specs: list[JobSpec]) -> None:
    feed = request.app.state.feed
    if all("queue" in s.model_fields_set for s in specs) or feed.workers_known(ROUTE_WARMUP_S):
        return
    deadline = time.monotonic() + ROUTE_WARMUP_S
    while not feed.workers_known(ROUTE_WARMUP_S) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def route(request: Request, spec: JobSpec) -> JobSpec:
    """Routing by capability, for a job that names no queue: `default` if every live worker
    consuming `default` serves its type; else a queue all of whose live consumers serve it
    (seen in their heartbeats). A worker handed a type it lacks can only fail it."""
    if "queue" in spec.model_fields_set:
        return spec
    workers = request.app.state.feed.worker_list(time.time())
    # With no live worker in view at all (a partition can cut every heartbeat off from this
    # gateway), the workers last seen decide, rather than everything going to `default`.
    live = [hb for hb in workers if hb["alive"]] or workers
    consumers = _consumers(spec.type, live)
    if not consumers or all(consumers.get("default", [False])):
        return spec
    able = _able(consumers)
    if not able:
        # No live worker serves the type (its workers are restarting, or their heartbeats are
        # cut off by a partition): send it where the workers that served it were last seen,
        # to wait for them, rather than to `default`, where the others can only fail it.
        able = [q for q in _able(_consumers(spec.type, workers)) if q != "default"]
    if able:
        return spec.model_copy(update={"queue": able[0]})
    return spec


def _consumers(job_type: str, heartbeats: list[dict]) -> dict[str, list[bool]]:
    """Per queue, whether each of its consumers serves `job_type`."""
    consumers: dict[str, list[bool]] = {}
    for hb in heartbeats:
        serves = job_type in (hb.get("types") or [])
        for q in hb.get("queues") or []:
            consumers.setdefault(q, []).append(serves)
    return consumers


def _able(consumers: dict[str, list[bool]]) -> list[str]:
    return sorted(q for q, flags in consumers.items() if all(flags))


def unserved(request: Request, spec: JobSpec) -> Optional[str]:
    """Why no live worker will take this job now, or None. Such a job is still accepted (its
    workers may be starting), but the client is told, in a Warning header, that it waits."""
    queue = spec.queue
    live = [hb for hb in request.app.state.feed.worker_list(time.time()) if hb["alive"]]
    if not live or any(queue in (hb.get("queues") or []) and spec.type in (hb.get("types") or [])
                       for hb in live):
        return None
    return f'199 taskforce "no live worker consumes queue {queue} and serves type {spec.type}; the job waits for one"'


def command_for(spec: JobSpec, jid: str, now: float) -> dict:
    job = spec.model_dump()
    job.update(id=jid, submitted_at=now)
    return {"v": 1, "kind": "submit", "job": job}


def payload_over(spec: JobSpec, limit: int) -> bool:
    return len(json.dumps(spec.payload, separators=(",", ":"))) > limit


def check_payload(request: Request, spec: JobSpec) -> None:
    limit = request.app.state.cfg.gateway.max_payload_bytes
    if payload_over(spec, limit):
        raise HTTPException(413, f"payload over the limit of {limit} bytes")


def remember(request: Request, jid: str, spec: JobSpec, now: float) -> None:
    acc = request.app.state.accepted
    acc[jid] = (spec, now)
    while len(acc) > RECENT_ACCEPTED:
        acc.popitem(last=False)


@router.post("", status_code=202, response_model=Accepted,
             responses={413: {"description": "payload too large"}, 503: {"description": "broker unavailable; retry"}})
async def submit(spec: JobSpec, request: Request, response: Response,
                 idempotency_key: Optional[str] = Header(default=None, max_length=200),
                 principal: Principal = Depends(require("submit"))):
    check_payload(request, spec)
    await await_workers_known(request, [spec])
    spec = route(request, spec)
    warning = unserved(request, spec)
    jid = job_id(principal, idempotency_key)
    now = time.time()
    t0 = time.perf_counter()
    try:
        await request.app.state.publisher.publish([command_for(spec, jid, now)], request.app.state.cfg.gateway.publish_timeout_s)
    except BrokerUnavailable as e:
        metrics.SUBMITS.labels("unavailable").inc()
        return unavailable(f"not accepted: {e}")
    metrics.PUBLISH_SECONDS.observe(time.perf_counter() - t0)
    metrics.SUBMITS.labels("accepted").inc()
    remember(request, jid, spec, now)
    if warning:
        response.headers["Warning"] = warning
    return Accepted(id=jid)


@router.post("/batch", status_code=200, response_model=BatchResult)
async def submit_batch(batch: BatchSpec, request: Request,
                       idempotency_key: Optional[str] = Header(default=None, max_length=200),
                       principal: Principal = Depends(require("submit"))):
    """Up to 1,000 jobs. Each item gets its own status: 202 accepted, 413 too large, 503 not accepted.
    With an Idempotency-Key, item i gets the key "<key>/<i>"."""
    now = time.time()
    limit = request.app.state.cfg.gateway.max_payload_bytes
    results: list[BatchItem] = []
    commands, ids = [], []
    await await_workers_known(request, batch.jobs)
    for i, spec in enumerate(batch.jobs):
        if payload_over(spec, limit):
            results.append(BatchItem(index=i, status=413, error=f"payload over {limit} bytes"))
            continue
        spec = route(request, spec)
        jid = job_id(principal, f"{idempotency_key}/{i}" if idempotency_key else None)
        commands.append(command_for(spec, jid, now))
        ids.append((i, jid, spec))
    try:
        if commands:
            await request.app.state.publisher.publish(commands, request.app.state.cfg.gateway.publish_timeout_s * 4)
        status, err = 202, None
        metrics.SUBMITS.labels("accepted").inc(len(commands))
    except BrokerUnavailable as e:
        # The publish of a batch stops at the first failure; earlier items may have landed, so
        # none is reported accepted, and a retry with the same Idempotency-Key is safe.
        status, err = 503, f"not accepted: {e}"
        metrics.SUBMITS.labels("unavailable").inc(len(commands))
    for i, jid, spec in ids:
        results.append(BatchItem(index=i, id=jid, status=status, error=err))
        if status == 202:
            remember(request, jid, spec, now)
    results.sort(key=lambda r: r.index)
    return BatchResult(results=results)


async def find(request: Request, jid: str) -> dict:
    """The gateway's view, then the committed record, then what this gateway just accepted."""
    st = request.app.state
    try:
        code, body = await st.upstream.get(f"/jobs/{jid}")
    except OrchestratorsUnavailable:
        code, body = 0, None
    if code == 200:
        st.view.merge(body)
        return body
    rec = st.view.get(jid)
    if rec is not None:
        return rec
    if jid in st.accepted:
        spec, ts = st.accepted[jid]
        return {"id": jid, "type": spec.type, "queue": spec.queue, "priority": spec.priority,
                "lane": lane_for(spec.priority), "max_attempts": spec.max_attempts, "timeout_s": spec.timeout_s,
                "run_at": spec.run_at, "tags": spec.tags, "status": Phase.PENDING.value, "attempt": 0,
                "generation": 0, "attempts": [], "submitted_at": ts, "updated_at": ts}
    if code == 0:
        raise HTTPException(503, "no orchestrator answered; retry", headers={"Retry-After": "1"})
    raise HTTPException(404, f"no job with id {jid}")


@router.get("/{jid}", response_model=JobRecord)
async def get_job(jid: str, request: Request, _: Principal = Depends(require("read"))):
    return await find(request, jid)


@router.get("", response_model=JobPage)
async def list_jobs(request: Request, status: Optional[Phase] = None, type: Optional[str] = None,
                    queue: Optional[str] = None, limit: int = Query(100, ge=1, le=1000),
                    cursor: Optional[str] = Query(None, pattern=r"^[0-9]+$"),
                    _: Principal = Depends(require("read"))):
    params = {"limit": limit}
    if status:
        params["status"] = status.value
    if type:
        params["type"] = type
    if queue:
        params["queue"] = queue
    if cursor:
        params["cursor"] = cursor
    try:
        code, body = await request.app.state.upstream.get("/jobs", params)
    except OrchestratorsUnavailable as e:
        return unavailable(str(e))
    if code != 200:
        raise HTTPException(code, body.get("detail", "orchestrator error"))
    return body


async def _command(request: Request, jid: str, kind: str, allowed: set[str]) -> JSONResponse:
    rec = await find(request, jid)
    if rec["status"] not in allowed:
        raise HTTPException(409, f"job {jid} is {rec['status']}; {kind} applies to {', '.join(sorted(allowed))} jobs")
    try:
        await request.app.state.publisher.publish([{"v": 1, "kind": kind, "job_id": jid}],
                                                  request.app.state.cfg.gateway.publish_timeout_s)
    except BrokerUnavailable as e:
        return unavailable(f"not accepted: {e}")
    return JSONResponse({"id": jid, "status": f"{kind} accepted"}, status_code=202)


@router.post("/{jid}/cancel", status_code=202)
async def cancel(jid: str, request: Request, _: Principal = Depends(require("submit"))):
    return await _command(request, jid, "cancel", {"pending", "queued", "running", "failed"})


@router.post("/{jid}/retry", status_code=202)
async def retry(jid: str, request: Request, _: Principal = Depends(require("submit"))):
    return await _command(request, jid, "retry", {"dead", "failed", "cancelled"})
