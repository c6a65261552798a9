"""The replicated schedule: a deterministic state machine of jobs, timers and an outbox.

Every mutation takes the leader's clock (`now`) and epoch as arguments, so that all
replicas apply the same log to the same state. Side effects (publishing a job to its lane,
telling gateways about a transition, cancelling on workers, dead-lettering) are not done
here: they are appended to an *outbox* with a sequence number. The leader publishes the
outbox with confirms and then commits how far it got, so a leader that dies between commit
and publish leaves the work to its successor (at-least-once, never lost).
"""
from __future__ import annotations

import hashlib
import heapq
from collections import deque
from typing import Any, Optional

from ..crdt import GCounter, JobStatus
from ..model import Phase, lane_for, lane_queue

FENCED = "fenced"

# Outbox kinds
DISPATCH = "dispatch"   # job message -> tf.jobs / lane queue
EVENT = "event"         # committed transition -> tf.events
CONTROL = "control"     # cancel -> tf.control
DEAD = "dead"           # the job message -> tf.dlx / tf.dead


def backoff(job_id: str, attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter. The jitter is a hash of (job, attempt), not a random
    draw, because every replica must compute the same due time."""
    h = int.from_bytes(hashlib.blake2b(f"{job_id}:{attempt}".encode(), digest_size=4).digest(), "big")
    frac = h / 0xFFFFFFFF
    raw = min(cap, base * (2 ** max(0, attempt - 1)))
    return raw * (0.5 + 0.5 * frac)


class Schedule:
    def __init__(self, backoff_base: float = 1.0, backoff_max: float = 300.0,
                 retention_s: float = 86400.0, max_retained: int = 100_000) -> None:
        self.epoch = 0
        self.leader = ""
        self.jobs: dict[str, dict[str, Any]] = {}
        self.order = 0                       # submission counter; list cursors use it
        self.timers: list[tuple[float, str, int, int]] = []   # (due, job_id, generation, attempt)
        self.running: dict[str, float] = {}  # job_id -> started_at of the current attempt
        self.finished: deque[tuple[float, str]] = deque()   # (finished_at, id), for retention
        self.outbox: deque[tuple[int, str, Any]] = deque()
        self.seq = 0
        self.outbox_done = 0
        self.counters = {"submitted": GCounter(), "succeeded": GCounter(), "failed": GCounter(),
                         "dead": GCounter(), "cancelled": GCounter()}
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retention_s = retention_s
        self.max_retained = max_retained

    # ---- leadership -------------------------------------------------------------------
    def begin_epoch(self, epoch: int, leader: str) -> Any:
        """A new leader's first commit. Any later command carrying an older epoch is refused,
        which is what fences a leader that has been superseded but does not know it yet."""
        if epoch <= self.epoch:
            return FENCED
        self.epoch = epoch
        self.leader = leader
        return epoch

    # ---- the batch entry point ----------------------------------------------------------
    def apply(self, epoch: int, now: float, commands: list[dict], events: list[dict]) -> Any:
        if epoch != self.epoch:
            return FENCED
        results = []
        for c in commands:
            results.append(self._command(now, c))
        for e in events:
            self._event(now, e)
        return results

    def tick(self, epoch: int, now: float, expired: list[tuple[str, int, int]]) -> Any:
        """Timers that fell due, deadlines the leader found lapsed, and retention."""
        if epoch != self.epoch:
            return FENCED
        while self.timers and self.timers[0][0] <= now:
            _, jid, gen, attempt = heapq.heappop(self.timers)
            j = self.jobs.get(jid)
            if j is None or j["generation"] != gen or j["attempt"] != attempt - 1:
                continue  # superseded (cancelled, retried by an operator, ...)
            if j["status"] in (Phase.PENDING.value, Phase.FAILED.value):
                self._dispatch(now, j, attempt)
        for jid, attempt, gen in expired:
            j = self.jobs.get(jid)
            if j and j["status"] == Phase.RUNNING.value and j["attempt"] == attempt and j["generation"] == gen:
                self._attempt_failed(now, j, {"type": "Timeout", "message":
                                              f"no result within timeout_s={j['timeout_s']} and no live worker holds it"})
        self._compact(now)
        return len(self.outbox)

    def outbox_ack(self, epoch: int, upto: int) -> Any:
        if epoch != self.epoch:
            return FENCED
        while self.outbox and self.outbox[0][0] <= upto:
            self.outbox.popleft()
        self.outbox_done = max(self.outbox_done, upto)
        return upto

    # ---- commands -------------------------------------------------------------------------
    def _command(self, now: float, c: dict) -> str:
        kind = c.get("kind")
        if kind == "submit":
            return self._submit(now, c["job"])
        jid = c.get("job_id", "")
        j = self.jobs.get(jid)
        if j is None:
            return "unknown"
        if kind == "cancel":
            return self._cancel(now, j)
        if kind == "retry":
            return self._retry(now, j)
        return "bad-command"

    def _submit(self, now: float, spec: dict) -> str:
        jid = spec["id"]
        if jid in self.jobs:
            return "duplicate"   # an Idempotency-Key replay or a redelivered command
        self.order += 1
        j = {
            "id": jid, "n": self.order, "type": spec["type"], "payload": spec.get("payload"),
            "queue": spec.get("queue", "default"), "priority": int(spec.get("priority", 5)),
            "max_attempts": int(spec.get("max_attempts", 3)), "timeout_s": float(spec.get("timeout_s", 60.0)),
            "run_at": spec.get("run_at"), "tags": list(spec.get("tags") or []),
            "status": Phase.PENDING.value, "attempt": 0, "generation": 0, "attempts": [],
            "result": None, "error": None, "progress": None,
            "submitted_at": float(spec.get("submitted_at") or now), "updated_at": now,
            "finished_at": None, "next_run_at": None,
        }
        j["lane"] = lane_for(j["priority"])
        self.jobs[jid] = j
        self.counters["submitted"].incr(self.leader or "?")
        self._emit(now, j)
        run_at = j["run_at"]
        if run_at is not None and run_at > now:
            self._timer(j, run_at, 1)
        else:
            self._dispatch(now, j, 1)
        return "accepted"

    def _cancel(self, now: float, j: dict) -> str:
        if Phase(j["status"]).terminal:
            return "terminal"
        was_running = j["status"] == Phase.RUNNING.value
        self._set(now, j, Phase.CANCELLED, j["attempt"])
        j["next_run_at"] = None
        self._finish(now, j, "cancelled")
        self._out(CONTROL, {"v": 1, "kind": "cancel", "job_ids": [j["id"]], "ts": now})
        return "cancelled-running" if was_running else "cancelled"

    def _retry(self, now: float, j: dict) -> str:
        st = j["status"]
        if st in (Phase.DEAD.value, Phase.CANCELLED.value):
            j["generation"] += 1
            j["attempt"] = 0
            j["finished_at"] = None
            j["error"] = None
            self.running.pop(j["id"], None)
            self._dispatch(now, j, 1)
            return "revived"
        if st == Phase.FAILED.value:
            self._dispatch(now, j, j["attempt"] + 1)
            return "retried"
        return "not-retryable"

    # ---- worker events ---------------------------------------------------------------------
    def _event(self, now: float, e: dict) -> None:
        j = self.jobs.get(e.get("job_id", ""))
        if j is None:
            return
        kind = e.get("kind")
        gen, attempt = int(e.get("generation", 0)), int(e.get("attempt", 0))
        if gen != j["generation"]:
            return
        if kind == "started":
            self._record_run(j, e)
            if self._set(now, j, Phase.RUNNING, attempt):
                self.running[j["id"]] = float(e.get("ts") or now)
                j["progress"] = 0.0
        elif kind == "progress":
            if j["status"] == Phase.RUNNING.value and j["attempt"] == attempt:
                j["progress"] = e.get("progress")
                j["updated_at"] = now
                self._emit(now, j)
        elif kind == "succeeded":
            self._record_run(j, e, outcome="succeeded")
            if self._set(now, j, Phase.SUCCEEDED, attempt, emit=False):
                j["result"] = e.get("result")
                j["progress"] = 1.0
                j["error"] = None
                self._finish(now, j, "succeeded")
                self._emit(now, j)
        elif kind == "failed":
            err = e.get("error") or {"type": "Error", "message": ""}
            self._record_run(j, e, outcome="failed", error=err)
            cur = j["status"]
            if j["attempt"] == attempt and cur in (Phase.RUNNING.value, Phase.QUEUED.value):
                self._attempt_failed(now, j, err)

    def _attempt_failed(self, now: float, j: dict, err: dict) -> None:
        j["error"] = err
        self.running.pop(j["id"], None)
        self.counters["failed"].incr(self.leader or "?")
        if j["attempt"] >= j["max_attempts"]:
            self._set(now, j, Phase.DEAD, j["attempt"])
            self._finish(now, j, "dead")
            self._out(DEAD, {"job": self._job_message(j), "reason": f"{err.get('type')}: {err.get('message')}"[:500]})
        else:
            self._set(now, j, Phase.FAILED, j["attempt"], emit=False)
            due = now + backoff(j["id"], j["attempt"], self.backoff_base, self.backoff_max)
            j["next_run_at"] = due
            self._timer(j, due, j["attempt"] + 1)
            self._emit(now, j)

    def _record_run(self, j: dict, e: dict, outcome: Optional[str] = None, error: Optional[dict] = None) -> None:
        """One entry per (attempt, worker): a redelivery to another worker shows as a second run."""
        attempt, wid = int(e.get("attempt", 0)), e.get("worker_id")
        ts = float(e.get("ts") or 0)
        for a in j["attempts"]:
            if a["attempt"] == attempt and a["worker_id"] == wid and a["generation"] == j["generation"]:
                break
        else:
            a = {"attempt": attempt, "generation": j["generation"], "worker_id": wid, "node": e.get("node"),
                 "lang": e.get("lang"), "started_at": None, "finished_at": None, "outcome": None, "error": None}
            j["attempts"].append(a)
            if len(j["attempts"]) > 50:
                del j["attempts"][0]
        if outcome is None:
            a["started_at"] = a["started_at"] or ts
        else:
            a["finished_at"] = ts
            a["outcome"] = outcome
            a["error"] = error

    # ---- helpers -------------------------------------------------------------------------
    def _status(self, j: dict) -> JobStatus:
        return JobStatus(j["generation"], j["attempt"], Phase(j["status"]))

    def _set(self, now: float, j: dict, phase: Phase, attempt: int, emit: bool = True) -> bool:
        """Move j through the lattice; False (and nothing changes) if that would go backwards."""
        cur = self._status(j)
        new = cur.merge(JobStatus(j["generation"], attempt, phase))
        if new == cur:
            return False
        j["status"], j["attempt"] = new.phase.value, new.attempt
        j["updated_at"] = now
        if emit:
            self._emit(now, j)
        return True

    def _dispatch(self, now: float, j: dict, attempt: int) -> None:
        j["next_run_at"] = None
        j["status"] = Phase.QUEUED.value  # forward by construction: attempt grows or generation did
        j["attempt"] = attempt
        j["progress"] = None
        j["updated_at"] = now
        self._out(DISPATCH, self._job_message(j))
        self._emit(now, j)

    def _job_message(self, j: dict) -> dict:
        return {"v": 1, "id": j["id"], "type": j["type"], "payload": j["payload"], "queue": j["queue"],
                "priority": j["priority"], "attempt": max(1, j["attempt"]), "generation": j["generation"],
                "max_attempts": j["max_attempts"], "timeout_s": j["timeout_s"], "epoch": self.epoch,
                "submitted_at": j["submitted_at"], "lane_queue": lane_queue(j["queue"], j["lane"])}

    def _timer(self, j: dict, due: float, attempt: int) -> None:
        j["next_run_at"] = due
        heapq.heappush(self.timers, (due, j["id"], j["generation"], attempt))

    def _finish(self, now: float, j: dict, counter: str) -> None:
        j["finished_at"] = now
        self.running.pop(j["id"], None)
        if counter in self.counters and counter != "failed":
            self.counters[counter].incr(self.leader or "?")
        self.finished.append((now, j["id"]))

    def _emit(self, now: float, j: dict) -> None:
        self._out(EVENT, {"v": 1, "job_id": j["id"], "phase": j["status"], "attempt": j["attempt"],
                          "generation": j["generation"], "ts": now, "record": public_record(j)})

    def _out(self, kind: str, data: Any) -> None:
        self.seq += 1
        if kind == EVENT:
            data["seq"] = self.seq
        self.outbox.append((self.seq, kind, data))

    def _compact(self, now: float) -> None:
        """Forget finished jobs past retention, or beyond max_retained, oldest first."""
        horizon = now - self.retention_s
        while self.finished and (self.finished[0][0] < horizon or len(self.jobs) > self.max_retained):
            ts, jid = self.finished.popleft()
            j = self.jobs.get(jid)
            if j is not None and j["finished_at"] == ts and Phase(j["status"]).terminal:
                del self.jobs[jid]

    # ---- queries (local reads; a follower may lag) -----------------------------------------
    def get(self, jid: str) -> Optional[dict]:
        j = self.jobs.get(jid)
        return None if j is None else public_record(j, payload=True)

    def list(self, status: Optional[str] = None, type_: Optional[str] = None, queue: Optional[str] = None,
             limit: int = 100, after: int = 0) -> tuple[list[dict], Optional[int]]:
        out: list[dict] = []
        for j in self.jobs.values():
            if j["n"] <= after:
                continue
            if (status and j["status"] != status) or (type_ and j["type"] != type_) or (queue and j["queue"] != queue):
                continue
            out.append(public_record(j))
            if len(out) >= limit:
                return out, j["n"]
        return out, None

    def summary(self) -> dict:
        by_status: dict[str, int] = {}
        for j in self.jobs.values():
            by_status[j["status"]] = by_status.get(j["status"], 0) + 1
        return {"epoch": self.epoch, "leader": self.leader, "jobs": len(self.jobs), "by_status": by_status,
                "outbox": len(self.outbox), "seq": self.seq, "timers": len(self.timers),
                "counters": {k: {"total": v.value, "per_node": v.counts} for k, v in self.counters.items()}}


def public_record(j: dict, payload: bool = False) -> dict:
    r = {k: v for k, v in j.items() if k not in ("payload", "n")}
    r["attempts"] = [dict(a) for a in j["attempts"]]
    if payload:
        r["payload"] = j["payload"]
    return r
