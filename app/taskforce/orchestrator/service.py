"""The orchestrator process: a Raft member that schedules while it leads, and a small internal
API (HTTP, bearer internal token) from which gateways fetch committed job records and through
which operators change the Raft membership (POST /raft/members, see membership.py)."""
from __future__ import annotations

import hmac
import json
import logging
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import parse_qs, urlparse

from ..config import Config, split_hostport
from .leader import Leader, StepDown
from .membership import ChangeRefused, MembershipChanger, config_drift, parse_change
from .raft import make_node

log = logging.getLogger("taskforce.orchestrator")


def raft_status(node, state) -> dict:
    st = node.getStatus()
    leader = st.get("leader")
    members = [str(st.get("self"))]
    members += [k[len("partner_node_status_server_"):] for k in st if k.startswith("partner_node_status_server_")]
    with state.lock:
        summary = state.s.summary()
    return {
        "self": str(st.get("self")),
        "state": {0: "follower", 1: "candidate", 2: "leader"}.get(st.get("state"), str(st.get("state"))),
        "leader": str(leader) if leader else None,
        "has_quorum": bool(st.get("has_quorum")),
        "term": st.get("raft_term"),
        "commit_idx": st.get("commit_idx"),
        "last_applied": st.get("last_applied"),
        "members": sorted(members),
        "connected": {k[len("partner_node_status_server_"):]: v == 2 for k, v in st.items()
                      if k.startswith("partner_node_status_server_")},
        # the leader's view of how far each member holds its log; empty on a follower
        "match_idx": {k[len("match_idx_server_"):]: v for k, v in st.items() if k.startswith("match_idx_server_")},
        "schedule": summary,
    }


MAX_BODY = 4096


def make_http(cfg: Config, node, state) -> ThreadingHTTPServer:
    token = cfg.need("raft").internal_token.encode()
    changer = MembershipChanger(node, lambda: raft_status(node, state))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):  # the journal gets enough from the service itself
            pass

        def _send(self, code: int, body) -> None:
            data = json.dumps(body).encode()
            try:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                # The caller gave up waiting (a gateway's read timeout during a fault): nothing to
                # answer, and no traceback for the journal.
                pass

        def _authorized(self) -> bool:
            auth = self.headers.get("Authorization", "")
            if hmac.compare_digest(auth.encode(), b"Bearer " + token):
                return True
            self._send(401, {"detail": "bad or missing internal token"})
            return False

        def do_POST(self):
            if not self._authorized():
                return
            if urlparse(self.path).path != "/raft/members":
                return self._send(404, {"detail": "no such path"})
            try:
                n = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                n = -1
            if not 0 <= n <= MAX_BODY:
                return self._send(413 if n > MAX_BODY else 422, {"detail": f"send a JSON body of at most {MAX_BODY} bytes"})
            try:
                body = json.loads(self.rfile.read(n) or b"null")
            except ValueError:
                body = None
            try:
                st = changer.change(parse_change(body))
            except ChangeRefused as e:
                return self._send(e.code, e.body())
            except Exception as e:
                log.exception("raft membership: a change failed")
                return self._send(500, {"detail": f"the change failed: {e!r}; check the members before you retry",
                                        "reason": "error"})
            return self._send(200, st)

        def do_GET(self):
            if not self._authorized():
                return
            u = urlparse(self.path)
            q = {k: v[0] for k, v in parse_qs(u.query).items()}
            if u.path == "/status":
                return self._send(200, raft_status(node, state))
            if u.path.startswith("/jobs/"):
                with state.lock:
                    rec = state.s.get(u.path[len("/jobs/"):])
                return self._send(200, rec) if rec else self._send(404, {"detail": "unknown job id"})
            if u.path == "/jobs":
                try:
                    limit = max(1, min(1000, int(q.get("limit", 100))))
                    after = int(q.get("cursor") or 0)
                except ValueError:
                    return self._send(422, {"detail": "limit and cursor must be integers"})
                with state.lock:
                    jobs, nxt = state.s.list(q.get("status"), q.get("type"), q.get("queue"), limit, after)
                return self._send(200, {"jobs": jobs, "next_cursor": str(nxt) if nxt else None})
            return self._send(404, {"detail": "no such path"})

    host, port = split_hostport(cfg.need("raft").http_listen, 7100)
    srv = ThreadingHTTPServer((host, port), Handler)
    srv.daemon_threads = True
    return srv


def run(cfg: Config) -> int:
    raft = cfg.need("raft")
    node, state = make_node(raft)
    http = make_http(cfg, node, state)
    threading.Thread(target=http.serve_forever, name="read-api", daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("orchestrator %s up; peers %s; read API on %s", raft.self, raft.peers, raft.http_listen)
    leader = Leader(cfg, node, state)
    backoff = 0.1
    drift_checked = False
    while not stop.is_set():
        if not drift_checked and node.isReady():
            drift_checked = True
            drift = config_drift(raft.self, raft.peers, raft_status(node, state)["members"])
            if drift:
                log.warning("%s", drift)
        if not leader.is_leader():
            stop.wait(0.05)
            continue
        try:
            leader.run_term(stop.is_set)
            backoff = 0.1
        except StepDown as e:
            log.warning("stepping down: %s", e)
            stop.wait(0.1)
        except Exception as e:  # broker trouble: stay a Raft member, retry leading shortly
            log.warning("leader loop error: %r; retrying in %.1fs", e, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)
    log.info("orchestrator stopping")
    http.shutdown()
    node.destroy()
    time.sleep(0.2)
    return 0
