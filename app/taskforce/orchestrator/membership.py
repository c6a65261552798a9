"""Raft membership changes, one node at a time and checked after each: the orchestrator side of
adding or removing a core machine (POST /raft/members on the internal API, and
`taskforce raft-member` for operators).

pysyncobj applies a single-server change on each node as soon as the entry is in that node's
log, before it commits, and its own guard against a second change while one is uncommitted
never fires (see DurableSyncObj.uncommitted_membership). So a change is refused here unless
this node leads with a quorum, every member is connected to it, no change is in progress in
this process and none is uncommitted in the log; and once pysyncobj reports it committed, the
leader's status must list exactly the expected members, each connected and holding the log up
to the change, before the change counts as done.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from pysyncobj.syncobj import FAIL_REASON

log = logging.getLogger("taskforce.orchestrator")

DEFAULT_TIMEOUT_S = 30.0
MAX_TIMEOUT_S = 600.0
# A hostname or an IPv4 address, then a port: the form of [raft] self and peers.
_ADDRESS = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):([0-9]{1,5})$")


class ChangeRefused(Exception):
    """A change that was not made, or not verified: an HTTP code, one line for the operator,
    a machine-readable reason, and whatever else helps the caller (the leader's address)."""

    def __init__(self, code: int, reason: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.code, self.reason, self.detail, self.extra = code, reason, detail, extra

    def body(self) -> dict:
        return {"detail": self.detail, "reason": self.reason, **self.extra}


@dataclass(frozen=True)
class Change:
    op: str            # "add" or "remove"
    address: str       # host:port, exactly as the member's [raft] self says
    timeout_s: float = DEFAULT_TIMEOUT_S


def check_address(address: Any) -> str:
    m = _ADDRESS.match(address) if isinstance(address, str) else None
    if not m or not 0 < int(m.group(2)) < 65536:
        raise ChangeRefused(422, "bad_request",
                            f"{address!r} is not a Raft address host:port (write it as the member's [raft] self)")
    return address


def parse_change(body: Any) -> Change:
    """{"add": "host:port"} or {"remove": "host:port"}, optionally with "timeout_s"."""
    shape = 'the body must be {"add": "host:port"} or {"remove": "host:port"}, optionally with "timeout_s"'
    if not isinstance(body, dict) or set(body) - {"add", "remove", "timeout_s"}:
        raise ChangeRefused(422, "bad_request", shape)
    ops = [op for op in ("add", "remove") if op in body]
    if len(ops) != 1:
        raise ChangeRefused(422, "bad_request", shape + ": exactly one of add and remove")
    timeout = body.get("timeout_s", DEFAULT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_TIMEOUT_S:
        raise ChangeRefused(422, "bad_request", f"timeout_s must be a number of seconds in (0, {MAX_TIMEOUT_S:.0f}]")
    return Change(ops[0], check_address(body[ops[0]]), float(timeout))


def check_preconditions(st: dict, change: Change) -> None:
    """Refuse (409) unless this node may make the change now; st is raft_status()."""
    op, addr = change.op, change.address
    if st["state"] != "leader":
        where = f"the leader is {st['leader']}" if st["leader"] else "no leader is known"
        raise ChangeRefused(409, "not_leader", f"this orchestrator ({st['self']}) is not the Raft leader; {where}",
                            leader=st["leader"])
    if not st["has_quorum"]:
        raise ChangeRefused(409, "no_quorum", "the leader does not have a quorum; restore the members first")
    members = st["members"]
    if op == "add" and addr in members:
        raise ChangeRefused(409, "is_member", f"{addr} is already a member")
    if op == "remove":
        if addr not in members:
            raise ChangeRefused(409, "not_member", f"{addr} is not a member (members: {', '.join(members)})")
        if addr == st["self"]:
            raise ChangeRefused(409, "is_leader",
                                f"{addr} is the Raft leader, which pysyncobj cannot remove: move leadership to "
                                "another member first, then remove it there", leader=addr)
    # The member being removed may be down: replacing a dead machine is what removal is for.
    down = sorted(m for m, ok in st["connected"].items() if not ok and not (op == "remove" and m == addr))
    if down:
        raise ChangeRefused(409, "not_connected",
                            f"not connected to the leader: {', '.join(down)}; a change now could leave the group "
                            "without a majority, so bring them back first", not_connected=down)


def expected_members(members: list[str], change: Change) -> list[str]:
    after = set(members) | {change.address} if change.op == "add" else set(members) - {change.address}
    return sorted(after)


def verify(st: dict, expected: list[str], min_match: int) -> list[str]:
    """What is still wrong with the leader's view after a change (nothing: it is done). Every
    member other than the leader must be connected and hold the log up to min_match."""
    problems = []
    if st["state"] != "leader":
        problems.append(f"{st['self']} is no longer the leader (leader: {st['leader']})")
    members = st["members"]
    if len(set(members)) != len(members):
        problems.append(f"a member is listed twice: {', '.join(members)}")
    if sorted(set(members)) != expected:
        problems.append(f"the members are {', '.join(sorted(set(members)))}, expected {', '.join(expected)}")
    down = sorted(m for m, ok in st["connected"].items() if not ok)
    if down:
        problems.append(f"not connected: {', '.join(down)}")
    match = st.get("match_idx") or {}
    behind = sorted(m for m in expected if m != st["self"] and m not in down and match.get(m, 0) < min_match)
    if behind:
        problems.append(f"not caught up to index {min_match}: {', '.join(behind)}")
    return problems


def config_drift(self_addr: str, peers: list[str], members: list[str]) -> Optional[str]:
    """A line for the log when the configured peers are not the Raft membership the journal
    holds (after a change, until the config is updated); None when they agree."""
    configured = sorted(set(peers) | {self_addr})
    if configured == sorted(set(members)):
        return None
    parts = []
    if set(configured) - set(members):
        parts.append("configured but not members: " + ", ".join(sorted(set(configured) - set(members))))
    if set(members) - set(configured):
        parts.append("members but not configured: " + ", ".join(sorted(set(members) - set(configured))))
    return ("the Raft membership is not what [raft] self and peers say (" + "; ".join(parts)
            + "): the journal's membership holds; update the config to match")


_FAILURES = {
    FAIL_REASON.REQUEST_DENIED: (409, "denied", "pysyncobj refused it (a new leader whose first entry has not "
                                 "committed yet, or the membership changed meanwhile); check the members and retry"),
    FAIL_REASON.QUEUE_FULL: (503, "busy", "the leader's command queue is full; retry shortly"),
    FAIL_REASON.UNKNOWN_OUTCOME: (504, "unknown", "its outcome is unknown; check the members before you retry"),
}
_LEADER_CHANGED = (409, "leader_changed", "leadership changed before it committed; check the members on the new "
                   "leader before you retry")


class MembershipChanger:
    """Makes one change at a time on the leader: node is a DurableSyncObj, status returns
    raft_status()."""

    def __init__(self, node, status: Callable[[], dict], poll_s: float = 0.2,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.node = node
        self.status = status
        self.poll_s = poll_s
        self.clock = clock
        self._busy = threading.Lock()
        self.current: Optional[Change] = None

    def change(self, change: Change) -> dict:
        if not self._busy.acquire(blocking=False):
            cur = self.current
            raise ChangeRefused(409, "pending", "another membership change is in progress on this orchestrator"
                                + (f" ({cur.op} {cur.address})" if cur else "") + "; wait for it to finish")
        try:
            self.current = change
            return self._change(change)
        finally:
            self.current = None
            self._busy.release()

    def _change(self, change: Change) -> dict:
        op, addr, timeout = change.op, change.address, change.timeout_s
        deadline = self.clock() + timeout
        st = self.status()
        check_preconditions(st, change)
        pending = self.node.uncommitted_membership()
        if pending:
            raise ChangeRefused(409, "pending", "a membership change is still uncommitted in the leader's log ("
                                + ", ".join(f"{kind} {a} at index {i}" for i, kind, a in pending)
                                + "); wait for it to commit and check the members")
        expected = expected_members(st["members"], change)
        log.info("raft membership: %s %s on leader %s (term %s): members %s -> %s", op, addr, st["self"],
                 st["term"], ",".join(st["members"]), ",".join(expected))
        done = threading.Event()
        out: dict = {}

        def committed(_res, err):   # on pysyncobj's thread
            out["err"], out["commit_idx"] = err, self.node.raftCommitIndex
            done.set()

        submit = self.node.addNodeToCluster if op == "add" else self.node.removeNodeFromCluster
        submit(addr, callback=committed)
        if not done.wait(max(0.0, deadline - self.clock())):
            log.warning("raft membership: %s %s not committed within %.0fs", op, addr, timeout)
            raise ChangeRefused(504, "timeout", f"{op} {addr} was not committed within {timeout:.0f}s; it may still "
                                "take effect: check the members before you retry")
        if out["err"] != FAIL_REASON.SUCCESS:
            code, reason, why = _FAILURES.get(out["err"], _LEADER_CHANGED)
            log.warning("raft membership: %s %s failed (pysyncobj reason %s): %s", op, addr, out["err"], why)
            raise ChangeRefused(code, reason, f"{op} {addr}: {why}")
        log.info("raft membership: %s %s committed (commit index %d); verifying", op, addr, out["commit_idx"])
        while True:
            st = self.status()
            problems = verify(st, expected, out["commit_idx"])
            if not problems:
                log.info("raft membership: %s %s verified: members %s, all connected", op, addr, ",".join(expected))
                return st
            if self.clock() >= deadline:
                log.warning("raft membership: %s %s committed but not verified: %s", op, addr, "; ".join(problems))
                raise ChangeRefused(504, "unverified", f"{op} {addr} committed, but within {timeout:.0f}s the "
                                    "leader's view did not check out: " + "; ".join(problems), status=st)
            time.sleep(self.poll_s)
