"""One command line for every service and for people:

    taskforce orchestrator|gateway|worker --config FILE
    taskforce submit TYPE [--payload JSON] [--priority N] [--wait]
    taskforce status [JOB_ID]
    taskforce watch JOB_ID
    taskforce token            (print a new random token and its sha256 for tokens.toml)
    taskforce raft-member add|remove HOST:PORT [--config FILE]   (one Raft membership change)
    taskforce raft-member list [--config FILE]

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


# ---- Raft membership, on a core host -------------------------------------------------------------
def _api_urls(raft, explicit: Optional[str]) -> list[str]:
    """The orchestrators' internal API URLs to ask: --orchestrators if given, else this node's
    http_listen and, for every peer, the peer's host with this node's API port (the roles give
    every orchestrator of a cluster the same API port)."""
    if explicit:
        return [u.strip().rstrip("/") for u in explicit.split(",") if u.strip()]
    host, port = split_hostport(raft.http_listen, 7100)
    local = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
    peers = [f"http://{split_hostport(p, 4321)[0]}:{port}" for p in raft.peers]
    return list(dict.fromkeys([local] + peers))


def pick_leader(statuses: dict[str, Optional[dict]]) -> Optional[tuple[str, dict]]:
    """(url, status) of the orchestrator that says it leads with a quorum, the highest term if
    more than one says so (a deposed leader that has not heard yet)."""
    leading = [(st["term"] or 0, url, st) for url, st in statuses.items()
               if st and st.get("state") == "leader" and st.get("has_quorum")]
    if not leading:
        return None
    _, url, st = max(leading, key=lambda x: x[0])
    return url, st


def new_member_mismatch(target: str, leader_st: dict, statuses: dict[str, Optional[dict]]) -> Optional[str]:
    """A node being added must list every current member as a peer, or it will count votes
    over the wrong group. Its own status shows what it lists; None if it agrees or is not seen."""
    own = next((st for st in statuses.values() if st and st.get("self") == target), None)
    if own is None:
        return None
    want = sorted(set(leader_st["members"]) | {target})
    if sorted(set(own["members"])) != want:
        return (f"{target} lists {', '.join(sorted(set(own['members'])))} as its group, but it would join "
                f"{', '.join(want)}: set its [raft] peers to every current member and restart it first")
    return None


def _member_lines(st: dict) -> list[str]:
    out = []
    for m in st["members"]:
        if m == st["self"]:
            out.append(f"  {m}  leader")
        else:
            ok = "connected" if st["connected"].get(m) else "NOT CONNECTED"
            at = st.get("match_idx", {}).get(m)
            out.append(f"  {m}  {ok}" + (f", log at {at} of {st['commit_idx']}" if at is not None else ""))
    return out


def cmd_raft_member(a) -> int:
    import httpx
    raft = load(a.config).need("raft")
    urls = _api_urls(raft, a.orchestrators)
    headers = {"Authorization": f"Bearer {raft.internal_token}"}
    who = f"raft-member {a.action}" + (f" {a.address}" if a.address else "")

    def fail(msg: str) -> int:
        print(f"taskforce {who}: {msg}", file=sys.stderr)
        return 1

    def statuses() -> dict[str, Optional[dict]]:
        out: dict[str, Optional[dict]] = {}
        for u in urls:
            try:
                r = httpx.get(u + "/status", headers=headers, timeout=3)
                out[u] = r.json() if r.status_code == 200 else None
            except (httpx.HTTPError, ValueError):
                out[u] = None
        return out

    if a.action != "list" and not a.address:
        return fail("give the member's Raft address, HOST:PORT as in its [raft] self")
    for attempt in range(3):
        seen = statuses()
        found = pick_leader(seen)
        if found is None:
            answered = [u for u, st in seen.items() if st]
            return fail(f"no orchestrator that leads with a quorum among {', '.join(urls)} "
                        f"({len(answered)} answered); pass --orchestrators URL,... if their API is elsewhere")
        url, st = found
        print(f"leader {st['self']} (term {st['term']}) at {url}", flush=True)
        if a.action == "list":
            print("\n".join(_member_lines(st)))
            return 0
        if a.action == "add":
            mismatch = new_member_mismatch(a.address, st, seen)
            if mismatch:
                return fail(mismatch)
        print(f"asking it to {a.action} {a.address}, one change, checked (up to {a.timeout:.0f}s)", flush=True)
        try:
            r = httpx.post(url + "/raft/members", headers=headers, json={a.action: a.address, "timeout_s": a.timeout},
                           timeout=a.timeout + 15)
        except httpx.HTTPError as e:
            return fail(f"no answer from {url}: {e!r}; check the members with raft-member list before you retry")
        try:
            body = r.json()
        except ValueError:
            return fail(f"{url} answered {r.status_code}: {r.text[:200]}")
        if r.status_code == 200:
            print(f"done: {len(body['members'])} members, all connected")
            print("\n".join(_member_lines(body)))
            return 0
        if r.status_code == 409 and body.get("reason") == "not_leader" and attempt < 2:
            print(f"leadership moved ({body.get('detail')}); looking again", flush=True)
            time.sleep(1)
            continue
        return fail(f"{body.get('detail', r.text[:200])} ({r.status_code})")
    return fail("leadership kept moving; try again")


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
    s = sub.add_parser("raft-member", help="change the Raft membership, one node at a time (on a core host)")
    s.add_argument("action", choices=["add", "remove", "list"])
    s.add_argument("address", nargs="?", help="the member's Raft address, HOST:PORT as in its [raft] self")
    s.add_argument("--config", default=None, help="this host's orchestrator TOML (default $TASKFORCE_CONFIG or /etc/taskforce/taskforce.toml)")
    s.add_argument("--orchestrators", default=None,
                   help="internal API URLs to look for the leader at, comma-separated (default: this node's and its peers' hosts on this node's API port)")
    s.add_argument("--timeout", type=float, default=30.0, help="seconds for the change to commit and check out")
    s.set_defaults(fn=cmd_raft_member)
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
