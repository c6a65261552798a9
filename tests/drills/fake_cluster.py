"""A fake TaskForce behind one HTTP port, just enough for the drill runner: submits, SSE,
GETs, the cluster view, workers and readiness, with execution lines in a log file. It can
be told to misbehave (lose a job, run one twice, be unready) so that tests can prove a drill
notices."""
from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from drills.executions import LogTail
from drills.targets.base import CRASH, Component, Target


class FakeCluster:
    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        logdir.mkdir(parents=True, exist_ok=True)
        self.log = open(logdir / "worker1.log", "a", buffering=1)
        self.jobs: dict[str, dict] = {}
        self.seq = 0
        self.lock = threading.Lock()
        self.subscribers: list[queue.Queue] = []
        self.ready = True
        self.lose_next = 0        # accept this many jobs and then forget them
        self.run_twice_next = 0   # execute this many jobs twice
        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.srv.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self) -> None:
        for q in list(self.subscribers):
            q.put(None)
        self.srv.shutdown()
        self.srv.server_close()
        self.log.close()

    def _emit(self, j: dict, phase: str) -> None:
        with self.lock:
            self.seq += 1
            j["status"] = phase
            j["attempt"] = max(1, j["attempt"]) if phase != "pending" else 0
            ev = {"seq": self.seq, "job_id": j["id"], "phase": phase, "record": dict(j)}
            for q in self.subscribers:
                q.put(ev)

    def _run(self, j: dict, lose: bool, twice: bool) -> None:
        self._emit(j, "pending")
        if lose:
            return
        time.sleep(0.02)
        self._emit(j, "queued")
        for _ in range(2 if twice else 1):
            self.log.write(json.dumps({"exec": j["id"], "attempt": 1, "node": "w1", "worker_id": "w1-py-1"}) + "\n")
        self._emit(j, "running")
        time.sleep(0.05)
        self._emit(j, "succeeded")

    def _handler(self):
        fake = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _json(self, code: int, body) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                p = self.path.split("?")[0]
                if p == "/readyz":
                    return self._json(200 if fake.ready else 503, {"ready": fake.ready})
                if p == "/v1/cluster":
                    me = "127.0.0.1:1"
                    return self._json(200, {"raft": {"members": [
                        {"self": me, "state": "leader", "leader": me, "term": 1, "connected": {},
                         "schedule": {"leader": me, "epoch": 1}}]}, "rabbitmq": {"nodes": []}})
                if p == "/v1/workers":
                    return self._json(200, {"workers": [{"node": "w1", "lang": "python", "alive": True,
                                                         "in_flight": [], "worker_id": "w1-py-1"}]})
                if p == "/v1/jobs":
                    return self._json(200, {"jobs": list(fake.jobs.values()), "next_cursor": None})
                if p.startswith("/v1/jobs/"):
                    j = fake.jobs.get(p.rsplit("/", 1)[1])
                    return self._json(200, j) if j else self._json(404, {"detail": "no such job"})
                if p == "/v1/events":
                    q: queue.Queue = queue.Queue()
                    fake.subscribers.append(q)
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    try:
                        while True:
                            try:
                                ev = q.get(timeout=1.0)
                            except queue.Empty:
                                self.wfile.write(b": keepalive\n\n")
                                self.wfile.flush()
                                continue
                            if ev is None:
                                return
                            self.wfile.write(f"id: {ev['seq']}\nevent: job\ndata: {json.dumps(ev)}\n\n".encode())
                            self.wfile.flush()
                    except OSError:
                        return
                    finally:
                        fake.subscribers.remove(q)
                return self._json(404, {"detail": "no such path"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                key = self.headers.get("Idempotency-Key", "")
                jid = hashlib.sha256(key.encode()).hexdigest()[:32]
                with fake.lock:
                    known = jid in fake.jobs
                    if not known:
                        fake.jobs[jid] = {"id": jid, "type": body["type"], "tags": body.get("tags", []),
                                          "status": "pending", "attempt": 0, "generation": 0, "attempts": []}
                    lose, twice = fake.lose_next > 0, fake.lose_next <= 0 and fake.run_twice_next > 0
                    if not known:
                        fake.lose_next -= lose
                        fake.run_twice_next -= twice
                if not known:
                    threading.Thread(target=fake._run, args=(fake.jobs[jid], lose, twice), daemon=True).start()
                return self._json(202, {"id": jid, "status": "accepted"})

        return H


class FakeTarget(Target):
    kind = "fake"
    capabilities = frozenset({CRASH})

    def __init__(self, fake: FakeCluster) -> None:
        super().__init__()
        self.fake = fake
        self.token = "t"
        self.components = [Component("gateway", "gw1", "gw1", address=fake.url),
                           Component("orchestrator", "o1", "o1", address="127.0.0.1:1"),
                           Component("worker", "w1", "w1", lang="python")]
        self.crashed: list[str] = []

    def executions(self, history, since: float):
        return LogTail(self.fake.logdir, history, every=0.05).start()

    def crash(self, c: Component) -> None:
        self.crashed.append(c.name)

    def start(self, c: Component) -> None:
        self.crashed.remove(c.name)
