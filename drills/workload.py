"""The workload: a steady stream of submits through every gateway, and the observers that
record what became of them.

- Submits: one *operation* per tick at a fixed rate. An operation is one logical job with its
  own Idempotency-Key; it tries the gateways in turn (starting from a different one for each
  operation) until one answers 202 or its time runs out. Every try is recorded with its answer.
- States: an SSE reader on every gateway (`/v1/events`, resuming with Last-Event-ID), plus a
  poller that GETs jobs not yet seen terminal.
- Cluster: each gateway's `GET /v1/cluster` about once a second, for leader changes.

Jobs carry two tags, the run's tag and `op-N`, so that a job that landed without a 202 can be
traced to the operation that sent it.
"""
from __future__ import annotations

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Optional

import httpx

from .targets.base import Component, Target

TERMINAL = frozenset({"succeeded", "dead", "cancelled"})


@dataclass(frozen=True)
class JobKind:
    type: str
    payload: Any = None
    queue: Optional[str] = None   # None: let the gateway route by capability
    weight: float = 1.0


@dataclass
class WorkloadConfig:
    rate: float = 10.0                # operations per second
    mix: list[JobKind] = field(default_factory=lambda: [JobKind("sleep", {"seconds": 0.3}, weight=3),
                                                        JobKind("noop", {}, weight=1)])
    timeout_s: float = 30.0
    max_attempts: int = 5
    op_deadline_s: float = 20.0       # how long one operation keeps trying
    max_tries: int = 6
    threads: int = 16
    request_timeout_s: float = 10.0   # above the gateway's publish timeout (5 s), so a 503 is heard
    poll_every_s: float = 1.0
    poll_batch: int = 20
    cluster_every_s: float = 1.0
    seed: int = 1


def op_of_tags(tags: list, run_tag: str) -> Optional[int]:
    if run_tag not in tags:
        return None
    for t in tags:
        if isinstance(t, str) and t.startswith("op-") and t[3:].isdigit():
            return int(t[3:])
    return None


class Workload:
    def __init__(self, target: Target, history, cfg: WorkloadConfig, run_tag: str) -> None:
        self.target, self.history, self.cfg, self.run_tag = target, history, cfg, run_tag
        self.gws: list[Component] = target.gateways
        self.rng = random.Random(cfg.seed)
        self.accepted: dict[str, float] = {}
        self.terminal: set[str] = set()
        self.state_seen: dict[str, tuple] = {}
        self._seen_keys: set[tuple] = set()
        self._lock = threading.Lock()
        self._stop_submits = threading.Event()
        self._stop = threading.Event()
        self._down_until: dict[str, float] = {}
        self._threads: list[threading.Thread] = []
        self._pool = ThreadPoolExecutor(max_workers=cfg.threads, thread_name_prefix="submit")
        self._client = httpx.Client(headers={"Authorization": f"Bearer {target.token}"},
                                    timeout=httpx.Timeout(cfg.request_timeout_s, connect=2.0),
                                    limits=httpx.Limits(max_connections=cfg.threads * 2))
        self.ops = 0
        self.poll_fast = False

    # ---- life cycle ------------------------------------------------------------------------
    def start(self) -> "Workload":
        for g in self.gws:
            self._spawn(self._sse, g, name=f"sse-{g.name}")
            self._spawn(self._cluster, g, name=f"cluster-{g.name}")
        self._spawn(self._poll, name="poll")
        self._spawn(self._dispatch, name="dispatch")
        return self

    def _spawn(self, fn, *args, name: str) -> None:
        t = threading.Thread(target=fn, args=args, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def stop_submits(self) -> None:
        self._stop_submits.set()
        self._pool.shutdown(wait=True)

    def stop(self) -> None:
        self._stop_submits.set()
        self._stop.set()
        for t in self._threads:
            t.join(25)
        self._client.close()

    def pending(self) -> list[str]:
        with self._lock:
            return [j for j in self.accepted if j not in self.terminal]

    def wait_terminal(self, deadline: float) -> list[str]:
        self.poll_fast = True
        while time.time() < deadline:
            left = self.pending()
            if not left:
                return []
            time.sleep(0.5)
        return self.pending()

    # ---- submits -----------------------------------------------------------------------------
    def _dispatch(self) -> None:
        t0 = time.time()
        n = 0
        while not self._stop_submits.is_set():
            due = t0 + n / self.cfg.rate
            delay = due - time.time()
            if delay > 0 and self._stop_submits.wait(delay):
                return
            kind = self._pick()
            self.ops = n + 1
            try:
                self._pool.submit(self._op, n, kind, due)
            except RuntimeError:   # the pool is shutting down
                return
            n += 1

    def _pick(self) -> JobKind:
        total = sum(k.weight for k in self.cfg.mix)
        x = self.rng.random() * total
        for k in self.cfg.mix:
            x -= k.weight
            if x <= 0:
                return k
        return self.cfg.mix[-1]

    def body(self, n: int, kind: JobKind) -> dict:
        b = {"type": kind.type, "payload": kind.payload if kind.payload is not None else {},
             "timeout_s": self.cfg.timeout_s, "max_attempts": self.cfg.max_attempts,
             "tags": [self.run_tag, f"op-{n}"]}
        if kind.queue:
            b["queue"] = kind.queue
        return b

    def _op(self, n: int, kind: JobKind, scheduled: float) -> None:
        key = f"{self.run_tag}-{n}"
        body = self.body(n, kind)
        self.history.add("op", t=scheduled, op=n, key=key, job={"type": kind.type, "queue": kind.queue})
        ngw = len(self.gws)
        tries = 0
        i = n % ngw
        while tries < self.cfg.max_tries and time.time() < scheduled + self.cfg.op_deadline_s:
            now = time.time()
            # Skip a gateway that just refused a connection; when every one did, back off a
            # little, as a real client would, instead of spinning through the tries.
            for _ in range(ngw):
                if self._down_until.get(self.gws[i % ngw].name, 0) <= now:
                    break
                i += 1
            else:
                if self._stop.wait(0.5):
                    return
            g = self.gws[i % ngw]
            i += 1
            tries += 1
            t = time.time()
            rec: dict[str, Any] = {"op": n, "try": tries, "gw": g.name}
            try:
                r = self._client.post(g.address + "/v1/jobs", json=body, headers={"Idempotency-Key": key})
                rec.update(t_end=time.time(), code=r.status_code)
                if r.status_code == 202:
                    jid = r.json()["id"]
                    with self._lock:
                        self.accepted.setdefault(jid, t)
                    self.history.add("submit", t=t, outcome="accepted", id=jid, **rec)
                    return
                if r.status_code >= 500:
                    self.history.add("submit", t=t, outcome="told", detail=r.text[:200], **rec)
                    try:
                        wait = min(1.0, float(r.headers.get("Retry-After", "1")))
                    except ValueError:
                        wait = 1.0
                    if self._stop.wait(wait):
                        return
                    continue
                self.history.add("submit", t=t, outcome="rejected", detail=r.text[:300], **rec)
                return
            except httpx.ConnectError as e:
                self._down_until[g.name] = time.time() + 1.0
                self.history.add("submit", t=t, t_end=time.time(), outcome="dropped", error_kind="refused",
                                 error=repr(e)[:200], **rec)
            except httpx.TimeoutException as e:
                self.history.add("submit", t=t, t_end=time.time(), outcome="dropped", error_kind="timeout",
                                 error=repr(e)[:200], **rec)
            except httpx.HTTPError as e:
                self.history.add("submit", t=t, t_end=time.time(), outcome="dropped", error_kind="reset",
                                 error=repr(e)[:200], **rec)

    # ---- states ------------------------------------------------------------------------------
    def _record(self, src: str, rec: dict, seq: Optional[int] = None) -> None:
        tags = rec.get("tags") or []
        op = op_of_tags(tags, self.run_tag)
        if op is None:
            return
        jid, phase = rec["id"], rec["status"]
        attempt, gen = int(rec.get("attempt", 0)), int(rec.get("generation", 0))
        k = (src, jid, phase, attempt, gen)
        with self._lock:
            if k in self._seen_keys:
                return
            self._seen_keys.add(k)
            if phase in TERMINAL:
                self.terminal.add(jid)
        last = (rec.get("attempts") or [{}])[-1]
        self.history.add("state", src=src, id=jid, phase=phase, attempt=attempt, gen=gen, op=op, seq=seq,
                         node=last.get("node"), worker_id=last.get("worker_id"))

    def _sse(self, g: Component) -> None:
        last_id: Optional[str] = None
        timeout = httpx.Timeout(connect=2.0, read=25.0, write=5.0, pool=5.0)
        with httpx.Client(headers={"Authorization": f"Bearer {self.target.token}"}, timeout=timeout) as c:
            while not self._stop.is_set():
                headers = {"Last-Event-ID": last_id} if last_id else {}
                try:
                    with c.stream("GET", g.address + "/v1/events", headers=headers) as r:
                        if r.status_code != 200:
                            raise httpx.HTTPError(f"HTTP {r.status_code}")
                        self.history.add("sse", gw=g.name, event="open", last_id=last_id)
                        fid = ev = None
                        for line in r.iter_lines():
                            if self._stop.is_set():
                                return
                            if line.startswith("id: "):
                                fid = line[4:]
                            elif line.startswith("event: "):
                                ev = line[7:]
                            elif line.startswith("data: ") and ev == "job":
                                try:
                                    d = json.loads(line[6:])
                                except ValueError:
                                    continue
                                if isinstance(d.get("record"), dict):
                                    self._record(f"sse:{g.name}", d["record"], d.get("seq"))
                                last_id = fid
                            elif line == "":
                                fid = ev = None
                except (httpx.HTTPError, OSError) as e:
                    self.history.add("sse", gw=g.name, event="lost", error=type(e).__name__)
                if self._stop.wait(0.5):
                    return

    def _poll(self) -> None:
        k = 0
        while not self._stop.is_set():
            batch = self.cfg.poll_batch * (5 if self.poll_fast else 1)
            ids = self.pending()[:batch]
            for jid in ids:
                g = self.gws[k % len(self.gws)]
                k += 1
                try:
                    r = self._client.get(g.address + f"/v1/jobs/{jid}", timeout=3.0)
                    if r.status_code == 200:
                        self._record("poll", r.json())
                except httpx.HTTPError:
                    continue
                if self._stop.is_set():
                    return
            self._stop.wait(self.cfg.poll_every_s)

    def _cluster(self, g: Component) -> None:
        # Gateways are sampled in turn rather than all at once, to spread the load.
        self._stop.wait(self.cfg.cluster_every_s * self.gws.index(g) / max(1, len(self.gws)))
        while not self._stop.is_set():
            v = self.target.cluster(g, timeout=4.0)
            self.history.add("cluster", t=v.t, gw=g.name, leader=v.leader, epoch=v.epoch, term=v.term,
                             leaders=v.self_declared_leaders, unreachable=len(v.unreachable), error=v.error)
            self._stop.wait(self.cfg.cluster_every_s)

    # ---- after the deadline ----------------------------------------------------------------
    def final_sweep(self) -> None:
        """The deadline's snapshot: GET every accepted job not seen terminal."""
        for jid in self.pending():
            for g in self.gws:
                try:
                    r = self._client.get(g.address + f"/v1/jobs/{jid}", timeout=5.0)
                except httpx.HTTPError:
                    continue
                if r.status_code == 200:
                    rec = r.json()
                    self.history.add("final", id=jid, status=rec["status"], attempt=rec.get("attempt", 0),
                                     gen=rec.get("generation", 0), op=op_of_tags(rec.get("tags") or [], self.run_tag))
                    break
                if r.status_code == 404:
                    self.history.add("final", id=jid, status=None, detail="404 on " + g.name)
                    break

    def sweep_unanswered(self, max_pages: int = 50) -> int:
        """Jobs of this run that landed although no try was answered 202 show up in SSE; if SSE
        was down at the time, a listing of the cluster's jobs still finds them."""
        found = 0
        cursor = None
        g = self.gws[0]
        for _ in range(max_pages):
            params: dict[str, Any] = {"limit": 1000}
            if cursor:
                params["cursor"] = cursor
            try:
                r = self._client.get(g.address + "/v1/jobs", params=params, timeout=15.0)
            except httpx.HTTPError:
                return found
            if r.status_code != 200:
                return found
            body = r.json()
            for rec in body.get("jobs", []):
                op = op_of_tags(rec.get("tags") or [], self.run_tag)
                if op is not None and rec["id"] not in self.accepted:
                    found += 1
                    self._record("list", rec)
            cursor = body.get("next_cursor")
            if not cursor:
                return found
        return found
