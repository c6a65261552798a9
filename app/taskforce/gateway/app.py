"""The FastAPI application: wiring, auth, limits and health."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import generate_latest

from .. import __version__
from ..config import Config
from . import metrics
from .auth import TokenStore
from .feed import Feed, Hub, JobView
from .publisher import Publisher
from .routes import cluster, events, jobs
from .upstream import Upstream

log = logging.getLogger("taskforce.gateway")

# The batch endpoint carries up to 1,000 jobs; single requests are held to one payload plus room.
BATCH_BODY_LIMIT = 64 << 20


def create_app(cfg: Config, tokens: TokenStore) -> FastAPI:
    gw = cfg.need("gateway")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        loop = asyncio.get_running_loop()
        name = f"gateway-{cfg.node}-{uuid.uuid4().hex[:6]}"
        app.state.publisher = Publisher(cfg.amqp, name)
        app.state.publisher.start()
        app.state.feed = Feed(cfg.amqp, name, loop, app.state.view, app.state.hub)
        app.state.feed.start()
        app.state.upstream = Upstream(gw.orchestrators, gw.internal_token)
        app.state.draining = False
        try:
            yield
        finally:
            # Streams close cleanly: wake every subscriber with an end marker first.
            app.state.draining = True
            for q in list(app.state.hub.subscribers):
                q.put_nowait(None)
            app.state.publisher.stop()
            app.state.feed.stop()
            await app.state.upstream.close()

    app = FastAPI(title="TaskForce", version=__version__, lifespan=lifespan,
                  description="Submit jobs, watch them over Server-Sent Events, inspect the cluster.")
    app.state.cfg = cfg
    app.state.tokens = tokens
    app.state.view = JobView()
    app.state.hub = Hub()
    app.state.accepted = OrderedDict()   # ids this gateway accepted recently: answers GET before the commit shows

    @app.middleware("http")
    async def limits_and_metrics(request: Request, call_next):
        limit = BATCH_BODY_LIMIT if request.url.path.endswith("/batch") else gw.max_payload_bytes + 65536
        cl = request.headers.get("content-length")
        if cl is not None and cl.isdigit() and int(cl) > limit:
            metrics.REQUESTS.labels("limit", "413").inc()
            return JSONResponse({"detail": f"request body over the limit of {limit} bytes"}, status_code=413)
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.REQUESTS.labels(getattr(route, "path", "unmatched"), str(response.status_code)).inc()
        return response

    @app.get("/healthz", tags=["health"])
    async def healthz():
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request):
        st = request.app.state
        checks = {"broker_publish": st.publisher.connected.is_set() or await _probe_publish(st),
                  "event_feed": st.feed.connected.is_set(), "draining": st.draining}
        ok = checks["broker_publish"] and checks["event_feed"] and not st.draining
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["health"])
    async def prom(request: Request, _=None):
        request.app.state.tokens.authenticate(request.headers.get("Authorization"))
        metrics.VIEW_SIZE.set(len(request.app.state.view.records))
        metrics.EVENTS.set(request.app.state.feed.received)
        return PlainTextResponse(generate_latest(metrics.registry).decode(), media_type="text/plain; version=0.0.4")

    app.include_router(jobs.router)
    app.include_router(events.router)
    app.include_router(cluster.router)
    return app


async def _probe_publish(st) -> bool:
    """A publisher thread connects lazily; readiness asks it to connect now (an empty batch)."""
    try:
        await st.publisher.publish([], timeout=3.0)
        return True
    except Exception:
        return False
