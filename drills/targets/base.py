"""What a drill needs from a cluster, whatever runs it: where the gateways are, which
components exist, how to hurt them, and how to read what the workers executed.

Back ends: `local` (the one-host dev cluster of plain processes), `lab` (the nspawn lab,
through lab/faults.py) and `ssh` (real machines, through pyinfra). A drill names the
capabilities it needs; a back end that lacks one refuses the drill before it starts.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional

import httpx

# What a back end can do. A drill lists the ones it needs.
CRASH = "crash"            # kill -9 one service (systemd: kill, then keep it stopped until start)
STOP = "stop"              # clean stop (SIGTERM / systemctl stop) and start again
PAUSE = "pause"            # SIGSTOP / SIGCONT one service
POWER_CUT = "power_cut"    # a whole machine off without warning, then on again
PARTITION = "partition"    # cut the links between two groups of machines, then heal
NODE_PAUSE = "node_pause"  # freeze every process of a machine


class Refused(Exception):
    """The drill cannot start: the message says why and what to do."""


@dataclass(frozen=True)
class Component:
    role: str                    # orchestrator | gateway | worker | rabbitmq
    name: str                    # unique within the target, e.g. "orch2" or "core2/taskforce-orchestrator"
    node: str                    # the machine it runs on (local: the worker's node name, or the process name)
    lang: Optional[str] = None   # workers: python | java
    address: Optional[str] = None  # orchestrators: the Raft address; gateways: the base URL
    unit: Optional[str] = None   # systemd unit (lab, ssh)

    def victim(self) -> dict[str, Any]:
        return {"node": self.node, "roles": [self.role], "name": self.name, "lang": self.lang}


@dataclass
class ClusterView:
    """One sample of GET /v1/cluster, reduced to what drills judge."""

    t: float
    gateway: str
    leader: Optional[str] = None      # Raft address of the leader with a committed epoch
    epoch: Optional[int] = None
    term: Optional[int] = None
    self_declared_leaders: int = 0
    members: dict[str, dict] = field(default_factory=dict)
    unreachable: list[str] = field(default_factory=list)
    rabbit_unreachable: list[str] = field(default_factory=list)
    error: Optional[str] = None


def parse_cluster(body: dict, gateway: str, t: float) -> ClusterView:
    v = ClusterView(t=t, gateway=gateway)
    for m in body.get("raft", {}).get("members", []):
        if "error" in m:
            v.unreachable.append(m.get("url", "?"))
            continue
        v.members[m["self"]] = m
        if m.get("state") == "leader":
            v.self_declared_leaders += 1
            sched = m.get("schedule") or {}
            if sched.get("leader") == m["self"]:
                v.leader, v.epoch, v.term = m["self"], sched.get("epoch"), m.get("term")
    if v.epoch is None and v.members:
        v.epoch = max((m.get("schedule") or {}).get("epoch", 0) for m in v.members.values())
    for n in body.get("rabbitmq", {}).get("nodes", []):
        if not n.get("reachable"):
            v.rabbit_unreachable.append(n.get("address", "?"))
    return v


class Target:
    """The common part: HTTP to the gateways, the cluster's view of itself, health."""

    kind = "abstract"
    capabilities: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.components: list[Component] = []
        self.token = ""
        self._http: Optional[httpx.Client] = None

    # ---- topology ------------------------------------------------------------------------
    def of(self, role: str, lang: Optional[str] = None) -> list[Component]:
        return [c for c in self.components if c.role == role and (lang is None or c.lang == lang)]

    @property
    def gateways(self) -> list[Component]:
        return self.of("gateway")

    def langs(self) -> set[str]:
        return {c.lang for c in self.of("worker") if c.lang}

    def expected_workers(self) -> set[tuple[str, str]]:
        """(node, lang) pairs that must each have a live worker for the cluster to be healthy."""
        return {(c.node, c.lang) for c in self.of("worker")}

    def node_victim(self, node: str) -> dict[str, Any]:
        roles = sorted({c.role for c in self.components if c.node == node})
        return {"node": node, "roles": roles, "name": node}

    def orchestrator_at(self, raft_address: Optional[str]) -> Optional[Component]:
        if not raft_address:
            return None
        host = raft_address.rsplit(":", 1)[0]
        for c in self.of("orchestrator"):
            if c.address == raft_address:
                return c
        for c in self.of("orchestrator"):
            if c.address and c.address.rsplit(":", 1)[0] == host or c.node == host:
                return c
        return None

    # ---- HTTP ----------------------------------------------------------------------------
    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(headers={"Authorization": f"Bearer {self.token}"},
                                      timeout=httpx.Timeout(6.0, connect=2.0))
        return self._http

    def cluster(self, gw: Optional[Component] = None, timeout: float = 6.0) -> ClusterView:
        order = [gw] if gw else self.gateways
        last = "no gateway"
        for g in order:
            t = time.time()
            try:
                r = self.http.get(g.address + "/v1/cluster", timeout=timeout)
                if r.status_code == 200:
                    return parse_cluster(r.json(), g.name, t)
                last = f"{g.name}: HTTP {r.status_code}"
            except (httpx.HTTPError, ValueError) as e:
                last = f"{g.name}: {type(e).__name__}"
        return ClusterView(t=time.time(), gateway=order[0].name if order else "", error=last)

    def leader(self, timeout: float = 30.0) -> Component:
        end = time.time() + timeout
        while True:
            v = self.cluster()
            c = self.orchestrator_at(v.leader)
            if c is not None:
                return c
            if time.time() > end:
                raise Refused(f"no Raft leader with a committed epoch within {timeout:.0f}s ({v.error or 'none elected'})")
            time.sleep(0.5)

    def workers_alive(self) -> list[dict]:
        for g in self.gateways:
            try:
                r = self.http.get(g.address + "/v1/workers")
                if r.status_code == 200:
                    return [w for w in r.json()["workers"] if w.get("alive")]
            except (httpx.HTTPError, ValueError):
                continue
        return []

    def health(self) -> list[str]:
        """Why the cluster is not healthy; empty when it is."""
        reasons: list[str] = []
        for g in self.gateways:
            try:
                r = self.http.get(g.address + "/readyz", timeout=4)
                if r.status_code != 200:
                    reasons.append(f"gateway {g.name} not ready: {r.text[:200]}")
            except httpx.HTTPError as e:
                reasons.append(f"gateway {g.name} unreachable ({type(e).__name__})")
        v = self.cluster()
        if v.error:
            reasons.append(f"no gateway answered GET /v1/cluster ({v.error})")
            return reasons
        n_orch = len(self.of("orchestrator"))
        if v.unreachable:
            reasons.append(f"orchestrators not answering: {', '.join(v.unreachable)}")
        if len(v.members) < n_orch:
            reasons.append(f"{len(v.members)} of {n_orch} orchestrators answered")
        if v.leader is None:
            reasons.append("no Raft leader with a committed epoch")
        else:
            lead = v.members[v.leader]
            down = [p for p, ok in (lead.get("connected") or {}).items() if not ok]
            if down:
                reasons.append(f"leader {v.leader} is not connected to {', '.join(down)}")
            others = {m.get("leader") for m in v.members.values()} - {v.leader}
            if others:
                reasons.append(f"orchestrators disagree on the leader: {sorted(map(str, others))}")
        if v.self_declared_leaders > 1:
            reasons.append(f"{v.self_declared_leaders} orchestrators say they lead")
        if v.rabbit_unreachable:
            reasons.append(f"RabbitMQ nodes unreachable from {v.gateway}: {', '.join(v.rabbit_unreachable)}")
        have = {(w.get("node"), w.get("lang")) for w in self.workers_alive()}
        missing = sorted(self.expected_workers() - have)
        if missing:
            reasons.append("no live worker for " + ", ".join(f"{lang} on {node}" for node, lang in missing))
        if not reasons:
            # The broker's own view costs an SSH round trip and an Erlang VM start per call:
            # ask only when everything cheaper already says healthy.
            reasons += self.extra_health()
        return reasons

    def wait_healthy(self, timeout: float) -> tuple[bool, list[str]]:
        end = time.time() + timeout
        while True:
            reasons = self.health()
            if not reasons or time.time() > end:
                return not reasons, reasons
            time.sleep(1.0)

    # ---- what back ends provide ------------------------------------------------------------
    def extra_health(self) -> list[str]:
        return []

    def describe(self) -> str:
        return self.kind

    def executions(self, history, since: float):
        raise NotImplementedError

    def crash(self, c: Component) -> None:
        raise NotImplementedError

    def stop(self, c: Component) -> None:
        raise NotImplementedError

    def start(self, c: Component) -> None:
        raise NotImplementedError

    def restart(self, c: Component) -> None:
        self.stop(c)
        self.start(c)

    def pause(self, c: Component) -> None:
        raise NotImplementedError

    def resume(self, c: Component) -> None:
        raise NotImplementedError

    def power_cut(self, node: str) -> None:
        raise NotImplementedError

    def boot(self, node: str) -> None:
        raise NotImplementedError

    def partition(self, side_a: list[str], side_b: list[str]) -> None:
        raise NotImplementedError

    def heal_partitions(self) -> None:
        raise NotImplementedError

    def rabbit_running(self, node: str) -> Optional[bool]:
        """Whether the RabbitMQ node on `node` says it is running (None: cannot tell)."""
        return None

    def nodes(self, role: Optional[str] = None) -> list[str]:
        seen: list[str] = []
        for c in self.components:
            if (role is None or c.role == role) and c.node not in seen:
                seen.append(c.node)
        return seen

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
