"""The checker: a pure function from a drill's history to counts, timings and verdicts.

It trusts nothing but the history. In particular it does not import the app's status lattice:
it keeps its own copy of the order, so that a bug there cannot hide a regression here.

Definitions (docs/drills.md says the same, with examples):

- accepted: an operation (one logical submit, retried across gateways with one
  Idempotency-Key) that some gateway answered 202.
- completed: accepted, and seen `succeeded` by the deadline.
- lost: accepted, and not seen terminal by the deadline (the deadline is set after the last
  heal, once the cluster is healthy again). `lost_never_seen` are the lost jobs that no
  gateway ever reported in any state.
- stuck: a job of this drill that the cluster still reports in a non-terminal phase at the
  deadline (accepted or not).
- duplicated: a job executed more than once (execution lines of the demo handlers). Every
  execution after the first must be explained by a fault: the job was in flight during the
  fault's window, and for a fault that hit only workers, an earlier execution ran on a victim
  node. Anything else is an unexplained duplicate, which breaks the invariant.
- unexpected: terminal, but no submit of it was ever answered 202. Split by what the client
  was told: `after_503` (a gateway said "not accepted") and `no_answer` (the request timed out
  or the connection broke, so the client could not know). `phantom`: no submit at all.
- failed submits: every try not answered 202, classified `told` (an HTTP answer: 503 with
  Retry-After, or another 5xx) or `dropped` (no answer: refused, reset, timed out).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Optional

TERMINAL = frozenset({"succeeded", "dead", "cancelled"})
_RANK = {"pending": 0, "queued": 1, "running": 2, "failed": 3, "cancelled": 4, "dead": 5, "succeeded": 6}
# Roles whose failure can leave any job in flight (they hold every job's messages or decisions).
CLUSTER_WIDE_ROLES = frozenset({"orchestrator", "rabbitmq"})
WORKER_ROLES = frozenset({"worker"})


def status_key(gen: int, attempt: int, phase: str) -> tuple[int, int, int, int]:
    return (gen, 1 if phase in TERMINAL else 0, attempt, _RANK.get(phase, -1))


def _first(it: Iterable[Any], default=None):
    for x in it:
        return x
    return default


def check(history: list[dict[str, Any]], slack_s: float = 2.0) -> dict[str, Any]:
    h = sorted(history, key=lambda e: e["t"])
    marks = {e["what"]: e for e in h if e["type"] == "mark"}
    deadline = marks["deadline"]["t"] if "deadline" in marks else float("inf")

    # ---- submits ------------------------------------------------------------------------
    ops: dict[int, dict] = {e["op"]: e for e in h if e["type"] == "op"}
    tries: dict[int, list[dict]] = defaultdict(list)
    for e in h:
        if e["type"] == "submit":
            tries[e["op"]].append(e)
    accepted: dict[str, float] = {}          # id -> time its first 202 was sent (the try's start)
    accepted_answer: dict[str, float] = {}   # id -> time that 202 arrived
    op_of: dict[str, int] = {}
    idempotency_broken = []
    told_tries, dropped_tries = 0, 0
    dropped_by_error: dict[str, int] = defaultdict(int)
    told_by_code: dict[str, int] = defaultdict(int)
    rejected_tries = 0
    failed_ops = {"told": 0, "dropped": 0}
    failovers = 0
    for op, ts in tries.items():
        ids = {t["id"] for t in ts if t["outcome"] == "accepted"}
        if len(ids) > 1:
            idempotency_broken.append(op)
        first_ok = _first(t for t in ts if t["outcome"] == "accepted")
        for t in ts:
            if t["outcome"] == "told":
                told_tries += 1
                told_by_code[str(t.get("code"))] += 1
            elif t["outcome"] == "dropped":
                dropped_tries += 1
                dropped_by_error[t.get("error_kind") or "error"] += 1
            elif t["outcome"] == "rejected":
                rejected_tries += 1
        if first_ok is not None:
            jid = first_ok["id"]
            accepted.setdefault(jid, first_ok["t"])
            accepted_answer.setdefault(jid, first_ok.get("t_end", first_ok["t"]))
            op_of[jid] = op
            if any(t["outcome"] in ("told", "dropped") for t in ts if t["t"] < first_ok["t"]):
                failovers += 1
        elif ts:
            failed_ops["told" if ts[-1]["outcome"] in ("told", "rejected") else "dropped"] += 1

    # ---- states -------------------------------------------------------------------------
    seen_first: dict[str, float] = {}
    last_state: dict[str, dict] = {}
    terminal_at: dict[str, tuple[float, str]] = {}
    op_tag: dict[str, int] = {}
    per_source: dict[tuple[str, str], tuple] = {}
    regressions = []
    for e in h:
        if e["type"] not in ("state", "final"):
            continue
        if e["type"] == "state" and e["t"] > deadline + 1e-6:
            continue   # seen too late to count
        jid, phase = e["id"], e.get("phase") or e.get("status")
        if phase is None:
            continue
        if e.get("op") is not None:
            op_tag[jid] = e["op"]
        seen_first.setdefault(jid, e["t"])
        key = status_key(int(e.get("gen", 0)), int(e.get("attempt", 0)), phase)
        prev = last_state.get(jid)
        if prev is None or key >= prev["key"] or e["type"] == "final":
            last_state[jid] = {"key": key, "phase": phase, "t": e["t"]}
        if phase in TERMINAL and jid not in terminal_at:
            terminal_at[jid] = (e["t"], phase)
        src = e.get("src", "")
        if e["type"] == "state" and src.startswith("sse"):
            before = per_source.get((src, jid))
            if before is not None and key < before[0]:
                regressions.append({"id": jid, "src": src, "from": before[1], "to": phase, "t": e["t"]})
            if before is None or key > before[0]:
                per_source[(src, jid)] = (key, phase)

    ours = set(accepted) | set(op_tag)
    completed = [j for j in accepted if terminal_at.get(j, (0, ""))[1] == "succeeded"]
    dead = [j for j in accepted if terminal_at.get(j, (0, ""))[1] == "dead"]
    cancelled = [j for j in accepted if terminal_at.get(j, (0, ""))[1] == "cancelled"]
    lost = sorted(j for j in accepted if j not in terminal_at)
    lost_never_seen = [j for j in lost if j not in seen_first]
    stuck = sorted(j for j in ours if j in last_state and last_state[j]["phase"] not in TERMINAL)

    unexpected = {"after_503": [], "no_answer": [], "phantom": []}
    for jid in sorted(set(terminal_at) - set(accepted)):
        if jid not in op_tag:
            continue   # not this drill's job
        op = op_tag[jid]
        ts = tries.get(op, [])
        if not ts:
            unexpected["phantom"].append(jid)
        elif any(t["outcome"] == "told" for t in ts):
            unexpected["after_503"].append(jid)
        else:
            unexpected["no_answer"].append(jid)

    # ---- faults -------------------------------------------------------------------------
    faults = _faults(h)

    # ---- leader changes that no fault explains ---------------------------------------------
    elections = _elections(h)
    # Only a fault that hit an orchestrator or a broker can be why the leadership moved.
    unscheduled = [e for e in elections if not any(_in_window(e["t"], f, slack_s) for f in faults
                                                   if _scope(f["victims"]) == "cluster")]

    # ---- executions ---------------------------------------------------------------------
    execs: dict[str, list[dict]] = defaultdict(list)
    for e in h:
        if e["type"] == "exec" and e["id"] in ours:
            execs[e["id"]].append(e)
    dup_jobs = {j: es for j, es in execs.items() if len(es) > 1}
    explained, unexplained = 0, []
    by_fault: dict[str, int] = defaultdict(int)
    for jid, es in dup_jobs.items():
        start = accepted.get(jid, seen_first.get(jid, es[0]["t"]))
        end = terminal_at.get(jid, (float("inf"), ""))[0]
        for i in range(1, len(es)):
            why = _explain(es[:i], start, end, faults, slack_s)
            if why is None:
                near = [e for e in unscheduled if abs(e["t"] - es[i]["t"]) <= 10.0]
                unexplained.append({"id": jid, "executions": [
                    {k: x.get(k) for k in ("t", "attempt", "node", "worker_id")} for x in es],
                    "near_unscheduled_election": near[0] if near else None})
                break
            else:
                explained += 1
                by_fault[why] += 1
    extra_execs = sum(len(es) - 1 for es in dup_jobs.values())
    never_executed_but_done = [j for j in completed if j not in execs]

    # ---- timings ------------------------------------------------------------------------
    completions = sorted(t for j, (t, p) in terminal_at.items() if p == "succeeded" and j in ours)
    clusters = [e for e in h if e["type"] == "cluster"]
    health = [e for e in h if e["type"] == "health"]
    accept_tries = sorted((t["t"], t.get("t_end", t["t"])) for ts in tries.values() for t in ts
                          if t["outcome"] == "accepted")
    for f in faults:
        f.update(_timings(f, clusters, health, accept_tries, accepted, terminal_at, completions))

    # ---- verdicts -----------------------------------------------------------------------
    near_election = sum(1 for u in unexplained if u["near_unscheduled_election"])
    invariants = [
        _inv("no accepted job lost", not lost, f"{len(lost)} lost" + (f" (e.g. {lost[:3]})" if lost else "")),
        _inv("no unexplained duplicate execution", not unexplained,
             f"{len(unexplained)} unexplained" + (f" (e.g. {unexplained[0]['id']})" if unexplained else "")
             + (f"; {near_election} of them within 10 s of a leader change that no fault caused"
                if near_election else "")),
        _inv("no job moved backwards on any SSE stream", not regressions,
             f"{len(regressions)} regressions" + (f" (e.g. {regressions[0]})" if regressions else "")),
        _inv("one Idempotency-Key, one job id", not idempotency_broken, f"ops {idempotency_broken[:5]}"),
        _inv("no job of this drill appeared without a submit", not unexpected["phantom"],
             f"{len(unexpected['phantom'])} phantom jobs"),
        _inv("no accepted job died (the drill's job types never fail by themselves)", not dead,
             f"{len(dead)} dead" + (f" (e.g. {dead[:3]})" if dead else "")),
        _inv("every completed job has an execution on record", not never_executed_but_done,
             f"{len(never_executed_but_done)} completed without an execution line"
             + (f" (e.g. {never_executed_but_done[:3]})" if never_executed_but_done else "")),
    ]
    for e in h:
        if e["type"] == "check":
            invariants.append(_inv(e["name"], bool(e["ok"]), e.get("detail", "")))

    counts = {
        "ops": len(ops), "submit_tries": sum(len(v) for v in tries.values()),
        "accepted": len(accepted), "completed": len(completed), "dead": len(dead), "cancelled": len(cancelled),
        "lost": len(lost), "lost_never_seen": len(lost_never_seen), "stuck": len(stuck),
        "duplicated_jobs": len(dup_jobs), "duplicate_executions": extra_execs,
        "duplicates_explained": explained, "duplicates_unexplained": len(unexplained),
        "unexpected": sum(len(v) for v in unexpected.values()),
        "unexpected_after_503": len(unexpected["after_503"]), "unexpected_no_answer": len(unexpected["no_answer"]),
        "failed_tries_told": told_tries, "failed_tries_dropped": dropped_tries, "rejected_tries": rejected_tries,
        "failed_ops_told": failed_ops["told"], "failed_ops_dropped": failed_ops["dropped"],
        "failovers": failovers, "executions": sum(len(v) for v in execs.values()), "regressions": len(regressions),
        "leader_changes": len(elections), "unscheduled_leader_changes": len(unscheduled),
    }
    return {
        "ok": all(i["ok"] for i in invariants),
        "counts": counts,
        "failed_submits": {"told_by_code": dict(told_by_code), "dropped_by_error": dict(dropped_by_error)},
        "duplicates": {"explained_by_fault": dict(by_fault), "unexplained": unexplained[:20]},
        "faults": faults,
        "unscheduled_leader_changes": unscheduled,
        "invariants": invariants,
        "samples": {"lost": lost[:20], "stuck": stuck[:20], "unexpected": {k: v[:10] for k, v in unexpected.items()},
                    "regressions": regressions[:10]},
        "deadline": None if deadline == float("inf") else deadline,
    }


def _inv(name: str, ok: bool, detail: str) -> dict[str, Any]:
    return {"name": name, "ok": ok, "detail": "" if ok and detail.startswith(("0 ", "ops []")) else detail}


def _faults(h: list[dict]) -> list[dict]:
    """Pair each fault's inject with its heal and with the first healthy sample after the heal."""
    out: dict[Any, dict] = {}
    for e in h:
        if e["type"] != "fault":
            continue
        f = out.setdefault(e["fault_id"], {"id": e["fault_id"], "label": e.get("label", ""),
                                           "victims": e.get("victims", []), "inject": None, "heal": None})
        if e["event"] == "inject":
            f["inject"] = e["t"]
            f["victims"] = e.get("victims", f["victims"])
            f["label"] = e.get("label", f["label"])
        elif e["event"] == "heal":
            f["heal"] = e["t"]
    faults = [f for f in out.values() if f["inject"] is not None]
    health_ok = [e["t"] for e in h if e["type"] == "health" and e.get("ok")]
    for f in faults:
        after = f["heal"] if f["heal"] is not None else f["inject"]
        f["healthy"] = _first(t for t in health_ok if t >= after)
        # A cluster that never recovered was disrupted at least until the drill stopped asking.
        f["recovering_until"] = max((e["t"] for e in h if e["type"] == "health" and e.get("fault_id") == f["id"]),
                                    default=None)
    return sorted(faults, key=lambda f: f["inject"])


def _window(f: dict, slack: float) -> tuple[float, float]:
    """From just before a fault until just after the cluster was healthy again (or, if it never
    was, until the last look at its health)."""
    end = max(x for x in (f["inject"], f["heal"], f["healthy"], f.get("recovering_until")) if x is not None)
    return f["inject"] - slack, end + slack


def _in_window(t: float, f: dict, slack: float) -> bool:
    a, b = _window(f, slack)
    return a <= t <= b


def _elections(h: list[dict]) -> list[dict]:
    """Each time a higher committed epoch is first seen: a new leader took over."""
    out, top = [], None
    for c in h:
        if c["type"] != "cluster" or c.get("epoch") is None or not c.get("leader"):
            continue
        if top is not None and c["epoch"] > top:
            out.append({"t": c["t"], "leader": c["leader"], "epoch": c["epoch"], "from_epoch": top})
        top = c["epoch"] if top is None else max(top, c["epoch"])
    return out


def _scope(victims: list[dict]) -> str:
    roles = {r for v in victims for r in v.get("roles", [])}
    if roles & CLUSTER_WIDE_ROLES:
        return "cluster"
    if roles & WORKER_ROLES:
        return "worker"
    return "none"


def _explain(earlier: list[dict], start: float, end: float, faults: list[dict], slack: float) -> Optional[str]:
    """Which fault (label) explains one more execution of a job, or None."""
    for f in faults:
        w_start, w_end = _window(f, slack)
        if not (start <= w_end and end >= w_start):
            continue   # the job was not in flight during this fault
        scope = _scope(f["victims"])
        if scope == "cluster":
            return f["label"] or str(f["id"])
        if scope == "worker":
            nodes = {v.get("node") for v in f["victims"]}
            wids = {v.get("worker_id") for v in f["victims"] if v.get("worker_id")}
            if any((x.get("node") in nodes or x.get("worker_id") in wids) and x["t"] <= w_end for x in earlier):
                return f["label"] or str(f["id"])
    return None


def _timings(f: dict, clusters: list[dict], health: list[dict], accept_tries: list[tuple[float, float]],
             accepted: dict[str, float], terminal_at: dict[str, tuple[float, str]],
             completions: list[float]) -> dict[str, Any]:
    t0 = f["inject"]
    out: dict[str, Any] = {}
    before = [c for c in clusters if c["t"] <= t0 and c.get("epoch") is not None]
    epoch0 = max((c["epoch"] for c in before), default=None)
    leader0 = _first(c.get("leader") for c in reversed(before) if c.get("leader"))
    # Only a leader change before the cluster was healthy again is this fault's doing.
    until = max(x for x in (f["healthy"], f["heal"], t0 + 60.0 if f["heal"] is None else None) if x is not None) + 2.0
    new = _first(c for c in clusters if t0 < c["t"] <= until and c.get("leader") and c.get("epoch") is not None
                 and epoch0 is not None and c["epoch"] > epoch0)
    out["leader_before"] = leader0
    out["new_leader"] = new.get("leader") if new else None
    out["new_leader_s"] = round(new["t"] - t0, 3) if new else None
    first_acc = _first(end for start, end in accept_tries if start >= t0)
    out["first_accept_s"] = round(first_acc - t0, 3) if first_acc is not None else None
    after = [terminal_at[j][0] for j, ts in accepted.items()
             if ts >= t0 and j in terminal_at and terminal_at[j][1] == "succeeded"]
    out["first_completion_s"] = round(min(after) - t0, 3) if after else None
    # The longest stretch without any completion, from the last one before the fault until
    # the first one after the cluster was healthy again.
    end = f["healthy"] or f["heal"] or t0
    points = [_first((c for c in reversed(completions) if c <= t0), t0)]
    for c in completions:
        if c > t0:
            points.append(c)
            if c > end:
                break
    else:
        points.append(max(end, points[-1]))
    out["completion_gap_s"] = round(max(b - a for a, b in zip(points, points[1:])), 3) if len(points) > 1 else 0.0
    out["heal_to_healthy_s"] = (round(f["healthy"] - f["heal"], 3)
                                if f["healthy"] is not None and f["heal"] is not None else None)
    return out
