"""One command line for every service and for people:

    taskforce orchestrator|gateway|worker --config FILE
    taskforce submit TYPE [--payload JSON] [--priority N] [--wait]
    taskforce status [JOB_ID]
    taskforce watch JOB_ID
    taskforce token            (print a new random token and its sha256 for tokens.toml)

Clients read TASKFORCE_URL (default http://127.0.0.1:8080) and TASKFORCE_TOKEN.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
import time
from typing import Optional

from .config import ConfigError, load, split_hostport


def _logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pika").setLevel(logging.WARNING)
    logging.getLogger("pysyncobj").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)


def cmd_orchestrator(a) -> int:
    from .orchestrator.service import run
    return run(load(a.config))


def cmd_gateway(a) -> int:
    import uvicorn

    from .gateway.app import create_app
    from .gateway.auth import TokenStore
    cfg = load(a.config)
    gw = cfg.need("gateway")
    tokens = TokenStore.load(gw.tokens_file)
    host, port = split_hostport(gw.listen, 8080)
    # timeout_graceful_shutdown bounds how long open SSE streams may delay a stop.
    uvicorn.run(create_app(cfg, tokens), host=host, port=port, log_level="warning",
                timeout_graceful_shutdown=5, access_log=False)
    return 0


def cmd_worker(a) -> int:
    from .worker import Worker
    w = Worker(load(a.config))
    w.load_handler_modules()
    return w.run()


def cmd_token(a) -> int:
    from .gateway.auth import hash_token
    t = secrets.token_urlsafe(32)
    print(json.dumps({"token": t, "sha256": hash_token(t)}))
    return 0


# ---- the client side ----------------------------------------------------------------------------
def _client():
    import httpx
    url = os.environ.get("TASKFORCE_URL", "http://127.0.0.1:8080")
    token = os.environ.get("TASKFORCE_TOKEN")
    if not token:
        raise SystemExit("set TASKFORCE_TOKEN to an API token (make up prints one)")
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10.0)


def _die_http(r) -> None:
    try:
        detail = r.json().get("detail")
    except ValueError:
        detail = r.text
    raise SystemExit(f"error {r.status_code}: {json.dumps(detail) if not isinstance(detail, str) else detail}")


def _line(rec: dict) -> str:
    prog = rec.get("progress")
    p = f" {prog * 100:.0f}%" if isinstance(prog, (int, float)) and rec.get("status") == "running" else ""
    extra = ""
    if rec.get("error"):
        extra = f"  {rec['error'].get('type')}: {rec['error'].get('message')}"
    if rec.get("status") == "succeeded":
        extra = "  result=" + json.dumps(rec.get("result"))[:200]
    return f"{rec['id']}  {rec['status']:<9} attempt {rec.get('attempt', 0)}/{rec.get('max_attempts', '?')}{p}{extra}"


def cmd_submit(a) -> int:
    try:
        payload = json.loads(a.payload)
    except ValueError as e:
        raise SystemExit(f"--payload is not valid JSON: {e}")
    body = {"type": a.type, "payload": payload, "queue": a.queue, "priority": a.priority,
            "max_attempts": a.max_attempts, "timeout_s": a.timeout}
    if a.delay:
        body["run_at"] = time.time() + a.delay
    headers = {"Idempotency-Key": a.idempotency_key} if a.idempotency_key else {}
    with _client() as c:
        r = c.post("/v1/jobs", json=body, headers=headers)
        if r.status_code != 202:
            _die_http(r)
        jid = r.json()["id"]
        print(jid, flush=True)
        if a.wait:
            return _watch(c, jid)
    return 0


def cmd_status(a) -> int:
    with _client() as c:
        if a.job_id:
            r = c.get(f"/v1/jobs/{a.job_id}")
            if r.status_code != 200:
                _die_http(r)
            print(json.dumps(r.json(), indent=2) if a.json else _line(r.json()))
            return 0
        r = c.get("/v1/cluster")
        if r.status_code != 200:
            _die_http(r)
        cl = r.json()
        if a.json:
            print(json.dumps(cl, indent=2))
            return 0
        print(f"raft leader: {cl['raft']['leader']}  term {cl['raft']['term']}  commit {cl['raft']['commit_idx']}")
        for m in cl["raft"]["members"]:
            print(f"  {m.get('self', m.get('url'))}: {m.get('state', m.get('error'))}")
        for n in cl["rabbitmq"]["nodes"]:
            print(f"rabbitmq {n['address']}: {'up' if n['reachable'] else 'UNREACHABLE'}")
        for q, d in sorted((cl["rabbitmq"]["queues"] or {}).items()):
            print(f"  {q}: {d}")
        w = c.get("/v1/workers").json()["workers"]
        print(f"workers: {sum(1 for x in w if x['alive'])} alive of {len(w)}")
    return 0


def _watch(c, jid: str) -> int:
    """Follow one job's SSE stream, printing each transition; exit 0 on success."""
    last: Optional[dict] = None
    with c.stream("GET", f"/v1/jobs/{jid}/events", timeout=None) as r:
        if r.status_code != 200:
            r.read()
            _die_http(r)
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            ev = json.loads(line[6:])
            rec = ev.get("record")
            if rec:
                last = rec
                print(_line(rec), flush=True)
    if last is None:
        return 1
    return 0 if last["status"] == "succeeded" else 2


def cmd_watch(a) -> int:
    with _client() as c:
        return _watch(c, a.job_id)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="taskforce", description="TaskForce: a distributed job scheduler")
    p.add_argument("--log-level", default=os.environ.get("TASKFORCE_LOG_LEVEL", "info"))
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, fn in (("orchestrator", cmd_orchestrator), ("gateway", cmd_gateway), ("worker", cmd_worker)):
        s = sub.add_parser(name, help=f"run the {name} service")
        s.add_argument("--config", default=None, help="TOML file (default $TASKFORCE_CONFIG or /etc/taskforce/taskforce.toml)")
        s.set_defaults(fn=fn)
    s = sub.add_parser("submit", help="submit a job")
    s.add_argument("type")
    s.add_argument("--payload", default="{}")
    s.add_argument("--queue", default="default")
    s.add_argument("--priority", type=int, default=5)
    s.add_argument("--max-attempts", type=int, default=3)
    s.add_argument("--timeout", type=float, default=60.0)
    s.add_argument("--delay", type=float, default=0, help="seconds until run_at")
    s.add_argument("--idempotency-key")
    s.add_argument("--wait", action="store_true", help="follow the job until it ends")
    s.set_defaults(fn=cmd_submit)
    s = sub.add_parser("status", help="a job, or the cluster")
    s.add_argument("job_id", nargs="?")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_status)
    s = sub.add_parser("watch", help="follow a job live")
    s.add_argument("job_id")
    s.set_defaults(fn=cmd_watch)
    s = sub.add_parser("token", help="mint an API token and its hash")
    s.set_defaults(fn=cmd_token)
    a = p.parse_args(argv)
    _logging(a.log_level)
    try:
        return a.fn(a)
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as e:
        print(f"taskforce: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
