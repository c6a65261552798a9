"""The drill catalogue. Each drill is a name, what it needs from the back end, the job mix it
loads the cluster with, and a schedule of faults written against the Ctx API (runner.py).

A drill does not decide whether it passed: the checker does, from the history. A drill only
adds the observations that only it can make (for example that the RabbitMQ minority paused),
as `check` entries.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Optional

from .runner import Ctx
from .targets.base import CRASH, PARTITION, PAUSE, POWER_CUT, STOP, Component, Refused, Target
from .workload import JobKind


MIXES = ("routed", "explicit", "common")


def default_mix(t: Target, mix: str = "routed") -> list[JobKind]:
    """Short jobs both languages serve, plus one type per language. `routed` (the default):
    the language-only types name no queue, so that routing by capability is part of every
    drill; `explicit`: they name their language's queue; `common`: only the types both
    languages serve, on `default` (for clusters whose workers consume `default` alone)."""
    kinds = [JobKind("sleep", {"seconds": 0.3}, weight=3), JobKind("noop", {}, weight=1)]
    if mix == "common":
        return kinds
    explicit = mix == "explicit"
    if "python" in t.langs():
        kinds.append(JobKind("py_info", {}, queue="python" if explicit else None, weight=0.5))
    if "java" in t.langs():
        kinds.append(JobKind("jvm_info", {}, queue="java" if explicit else None, weight=0.5))
    return kinds


@dataclass
class Drill:
    name: str
    summary: str
    needs: frozenset
    schedule_fn: Callable[[Ctx], None]
    mix_fn: Callable[[Target, str], list[JobKind]] = default_mix
    prepare_fn: Optional[Callable[[Target], None]] = None
    post_fn: Optional[Callable[[Ctx], None]] = None
    ci: bool = False
    verifies: list[str] = field(default_factory=list)

    def schedule(self, ctx: Ctx) -> None:
        self.schedule_fn(ctx)

    def mix(self, t: Target, mix: str = "routed") -> list[JobKind]:
        return self.mix_fn(t, mix)

    def prepare(self, t: Target) -> None:
        if self.prepare_fn:
            self.prepare_fn(t)

    def post(self, ctx: Ctx) -> None:
        if self.post_fn:
            self.post_fn(ctx)


CATALOGUE: dict[str, Drill] = {}


def drill(name: str, summary: str, needs: set, **kw):
    def register(fn: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
        CATALOGUE[name] = Drill(name, summary, frozenset(needs), fn, **kw)
        return fn
    return register


# ---- helpers ----------------------------------------------------------------------------------
def _parallel(fns: list[Callable[[], None]]) -> None:
    with ThreadPoolExecutor(max_workers=max(1, len(fns))) as pool:
        for f in [pool.submit(fn) for fn in fns]:
            f.result()


def _pick_rabbit_node(t: Target) -> str:
    """A RabbitMQ node that does not host the Raft leader, so the drill tests the broker alone."""
    leader = t.leader()
    nodes = t.nodes("rabbitmq")
    others = [n for n in nodes if n != leader.node]
    return (others or nodes)[-1]


def _victims_of_node(t: Target, node: str) -> list[dict]:
    return [t.node_victim(node)]


# ---- leader faults ----------------------------------------------------------------------------
@drill("leader-kill", "kill -9 the Raft leader's orchestrator; restart it after the hold", {CRASH}, ci=True,
       verifies=["a new leader commits an epoch", "submits keep being accepted while there is no leader",
                 "no accepted job is lost; duplicates only for jobs in flight at the kill"])
def leader_kill(ctx: Ctx) -> None:
    t = ctx.target
    leader = t.leader()
    epoch0 = ctx.epoch()
    fid = ctx.inject(f"kill -9 leader {leader.name}", [leader.victim()], lambda: t.crash(leader),
                     undo=lambda: t.start(leader))
    ctx.wait_new_leader(epoch0, 30, avoid=leader)
    ctx.hold(ctx.hold_for(10))
    ctx.heal(fid, label=f"start {leader.name}")


@drill("leader-pause", "SIGSTOP the Raft leader's orchestrator for 20 s, then SIGCONT", {PAUSE},
       verifies=["the others elect a new leader while the old one is frozen",
                 "the old leader, thawed, does not act on its stale term (epoch fence): one leader after the heal",
                 "no accepted job is lost; no unexplained duplicate"])
def leader_pause(ctx: Ctx) -> None:
    t = ctx.target
    leader = t.leader()
    epoch0 = ctx.epoch()
    fid = ctx.inject(f"SIGSTOP leader {leader.name}", [leader.victim()], lambda: t.pause(leader),
                     undo=lambda: t.resume(leader))
    ctx.wait_new_leader(epoch0, 30, avoid=leader)
    ctx.hold(max(0.0, ctx.hold_for(20) - (time.time() - ctx.history.of("fault")[-1]["t"])))
    ctx.heal(fid, label=f"SIGCONT {leader.name}")
    v = t.cluster()
    ctx.check("one leader after the old one was thawed", v.self_declared_leaders == 1 and v.leader is not None,
              f"{v.self_declared_leaders} say they lead; committed leader {v.leader}")


@drill("leader-isolate", "partition the Raft leader's machine from the other orchestrators for 20 s", {PARTITION},
       verifies=["the majority elects a new leader", "the isolated leader stops calling itself leader",
                 "nothing is dispatched twice beyond at-least-once (no unexplained duplicate)"])
def leader_isolate(ctx: Ctx) -> None:
    t = ctx.target
    leader = t.leader()
    others = sorted({c.node for c in t.of("orchestrator")} - {leader.node})
    if not others:
        raise Refused("the leader's machine hosts every orchestrator; nothing to partition it from")
    epoch0 = ctx.epoch()
    gw_on_leader = [g for g in t.gateways if g.node == leader.node]
    samples: list[tuple[float, Optional[str]]] = []
    stop = threading.Event()

    def watch_stale() -> None:
        # The isolated machine's own gateway still reaches the old leader: ask it what it thinks.
        while not stop.is_set():
            v = t.cluster(gw_on_leader[0], timeout=25.0)
            m = next((m for a, m in v.members.items() if t.orchestrator_at(a) == leader), None)
            if m is not None:
                samples.append((v.t, m.get("state")))   # when the question was asked, not answered
            stop.wait(1.0)

    fid = ctx.inject(f"partition {leader.node} (leader) from {', '.join(others)}", [t.node_victim(leader.node)],
                     lambda: t.partition([leader.node], others), undo=t.heal_partitions)
    t_inject = time.time()
    watcher = threading.Thread(target=watch_stale, daemon=True) if gw_on_leader else None
    if watcher:
        watcher.start()
    ctx.wait_new_leader(epoch0, 30, avoid=leader)
    ctx.hold(max(0.0, ctx.hold_for(20) - (time.time() - t_inject)))
    stop.set()
    if watcher:
        watcher.join(30)
    ctx.heal(fid, label="heal the partition")
    late = [(ts - t_inject, st) for ts, st in samples if ts - t_inject > 8.0]
    if late:
        ctx.check("the isolated leader stopped calling itself leader (within 8 s)",
                  all(st != "leader" for _, st in late),
                  "; ".join(f"{dt:.1f}s: {st}" for dt, st in late[:4]))
    else:
        ctx.note("could not observe the isolated leader's own state (no gateway answer from its machine)")


# ---- RabbitMQ faults --------------------------------------------------------------------------
PAUSE_WAIT_S = 120.0

@drill("rabbit-node-kill", "power-cut one RabbitMQ node (not the leader's machine) for 20 s, then boot it",
       {POWER_CUT}, ci=True,
       verifies=["quorum queues keep accepting and delivering with 2 of 3 nodes",
                 "clients of the lost node reconnect; nothing accepted is lost"])
def rabbit_node_kill(ctx: Ctx) -> None:
    t = ctx.target
    node = _pick_rabbit_node(t)
    fid = ctx.inject(f"power-cut {node}", _victims_of_node(t, node), lambda: t.power_cut(node),
                     undo=lambda: t.boot(node))
    ctx.hold(ctx.hold_for(20))
    ctx.heal(fid, label=f"boot {node}")


@drill("rabbit-partition", "cut one RabbitMQ node off from the other brokers until it pauses (at least 30 s)",
       {PARTITION},
       verifies=["pause_minority: the cut-off node pauses itself", "the majority goes on; nothing is lost",
                 "after the heal the broker cluster reports all nodes running and no partition"])
def rabbit_partition(ctx: Ctx) -> None:
    t = ctx.target
    node = _pick_rabbit_node(t)
    others = [n for n in t.nodes("rabbitmq") if n != node]
    fid = ctx.inject(f"partition {node} from {', '.join(others)}", _victims_of_node(t, node),
                     lambda: t.partition([node], others), undo=t.heal_partitions)
    t0 = time.time()
    # Erlang notices a lost peer only after net_ticktime (60 s by default: 45-75 s), so the
    # partition stays until the minority has paused, or 120 s have passed.
    paused_at = ctx.wait_for(lambda: (t.rabbit_running(node) is False) and time.time(), PAUSE_WAIT_S, 2)
    ctx.check(f"pause_minority: the cut-off RabbitMQ node paused within {PAUSE_WAIT_S:.0f}s", paused_at is not None,
              f"{node} stopped running {paused_at - t0:.1f}s after the cut" if paused_at
              else f"{node} still running {PAUSE_WAIT_S:.0f}s after the cut")
    ctx.hold(max(0.0, ctx.hold_for(30) - (time.time() - t0)))
    ctx.heal(fid, label="heal the partition")
    ctx.check("the minority node runs again after the heal", t.rabbit_running(node) is True, node)


# ---- workers ----------------------------------------------------------------------------------
def _lang_mix(lang: str) -> Callable[[Target, str], list[JobKind]]:
    def mix(t: Target, mix: str = "routed") -> list[JobKind]:
        # Half the load runs on this language's own queue, long enough that several jobs are
        # always in flight on each of its workers; the other half keeps the rest busy. With
        # `common`, the long jobs go to `default`, where both languages take them.
        return [JobKind("sleep", {"seconds": 0.6}, queue=None if mix == "common" else lang, weight=1),
                JobKind("noop", {}, weight=1)]
    return mix


def _needs_lang(lang: str) -> Callable[[Target], None]:
    def prepare(t: Target) -> None:
        if not t.of("worker", lang):
            raise Refused(f"this cluster has no {lang} worker")
    return prepare


def _worker_power_cut(lang: str) -> Callable[[Ctx], None]:
    def schedule(ctx: Ctx) -> None:
        t = ctx.target
        candidates = t.of("worker", lang)

        def busiest():
            load: dict[str, int] = {}
            for hb in t.workers_alive():
                if hb.get("lang") == lang:
                    load[hb.get("node")] = load.get(hb.get("node"), 0) + len(hb.get("in_flight") or [])
            best = max(candidates, key=lambda c: load.get(c.node, 0))
            return (best, load.get(best.node, 0)) if load.get(best.node, 0) > 0 else None
        found = ctx.wait_for(busiest, 15, 0.5)
        victim, n = found if found else (candidates[0], 0)
        ctx.check(f"the victim held {lang} jobs in flight when it was cut", n > 0, f"{n} on {victim.node}")
        if POWER_CUT in t.capabilities:
            fid = ctx.inject(f"power-cut {victim.node} ({lang} worker machine)", _victims_of_node(t, victim.node),
                             lambda: t.power_cut(victim.node), undo=lambda: t.boot(victim.node))
        else:
            fid = ctx.inject(f"kill -9 {victim.name} and its handler processes", [victim.victim()],
                             lambda: t.crash(victim), undo=lambda: t.start(victim))
        ctx.hold(ctx.hold_for(10))
        ctx.heal(fid, label=f"bring {victim.name} back")
    return schedule


for _lang in ("python", "java"):
    CATALOGUE[f"worker-power-cut-{_lang}"] = Drill(
        f"worker-power-cut-{_lang}", f"power-cut a {_lang} worker's machine mid-job (local: kill -9 the worker)",
        frozenset({CRASH}), _worker_power_cut(_lang), mix_fn=_lang_mix(_lang), prepare_fn=_needs_lang(_lang),
        ci=True, verifies=["jobs running on the dead worker run again elsewhere (redelivery or timeout retry)",
                           "duplicate executions only for jobs in flight on the dead machine"])


# ---- gateways ---------------------------------------------------------------------------------
def _gateway_failover(ctx: Ctx) -> None:
    faults = [e for e in ctx.history.of("fault")]
    inject = next(e["t"] for e in faults if e["event"] == "inject")
    heal = next((e["t"] for e in faults if e["event"] == "heal"), time.time())
    ops = [e for e in ctx.history.of("op") if inject <= e["t"] <= heal]
    tries: dict[int, list[dict]] = {}
    for s in ctx.history.of("submit"):
        tries.setdefault(s["op"], []).append(s)
    victim = next(e for e in faults if e["event"] == "inject")["victims"][0]["name"]
    not_accepted = [o["op"] for o in ops if not any(s["outcome"] == "accepted" for s in tries.get(o["op"], []))]
    failed_over = [o["op"] for o in ops
                   if any(s["gw"] == victim and s["outcome"] != "accepted" for s in tries.get(o["op"], []))
                   and any(s["outcome"] == "accepted" for s in tries.get(o["op"], []))]
    ctx.check("every submit made while the gateway was down was accepted by another", not not_accepted,
              f"{len(ops)} ops in the window, {len(not_accepted)} never accepted")
    ctx.check("clients failed over from the dead gateway", bool(failed_over),
              f"{len(failed_over)} ops tried {victim}, then were accepted elsewhere")


@drill("gateway-kill", "kill -9 one gateway for 15 s; clients must fail over", {CRASH},
       post_fn=_gateway_failover,
       verifies=["every submit during the outage is accepted by another gateway",
                 "a try to the dead gateway is a refused connection, never a 202 that means nothing"])
def gateway_kill(ctx: Ctx) -> None:
    t = ctx.target
    g = t.gateways[0]
    fid = ctx.inject(f"kill -9 gateway {g.name}", [g.victim()], lambda: t.crash(g), undo=lambda: t.start(g))
    ctx.hold(ctx.hold_for(15))
    ctx.heal(fid, label=f"start {g.name}")


# ---- everything -------------------------------------------------------------------------------
@drill("full-outage", "power-cut every machine at once, boot them all (local: kill -9 every process)", {CRASH},
       ci=True, verifies=["the Raft log and the quorum queues survive a total power loss of every process",
                          "every job accepted before or after the outage completes; none is lost"])
def full_outage(ctx: Ctx) -> None:
    t = ctx.target
    if POWER_CUT in t.capabilities:
        nodes = t.nodes()
        fid = ctx.inject(f"power-cut all of {', '.join(nodes)}", [t.node_victim(n) for n in nodes],
                         lambda: _parallel([lambda n=n: t.power_cut(n) for n in nodes]),
                         undo=lambda: _parallel([lambda n=n: t.boot(n) for n in nodes]))
    else:
        order = ["worker", "gateway", "orchestrator", "rabbitmq"]
        comps = sorted(t.components, key=lambda c: order.index(c.role))
        boot = ["rabbitmq", "orchestrator", "gateway", "worker"]

        def up() -> None:
            for c in sorted(comps, key=lambda c: boot.index(c.role)):
                t.start(c)
        fid = ctx.inject("kill -9 every process (RabbitMQ, orchestrators, gateways, workers)",
                         [c.victim() for c in comps], lambda: [t.crash(c) for c in comps], undo=up)
    ctx.hold(ctx.hold_for(10))
    ctx.heal(fid, label="boot everything")


@drill("rolling-restart", "restart every service one at a time under load, the leader's last", {STOP},
       verifies=["a rolling restart is invisible to clients: no submit lost, no job lost",
                 "each restarted service rejoins before the next one goes down"])
def rolling_restart(ctx: Ctx) -> None:
    t = ctx.target
    leader = t.leader()
    role_order = ["worker", "gateway", "orchestrator", "rabbitmq"]
    if t.kind == "local":
        # One RabbitMQ node: restarting it is an outage, which full-outage covers.
        comps = [c for c in t.components if c.role != "rabbitmq"]
        comps.sort(key=lambda c: (role_order.index(c.role), c.name == leader.name, c.name))
        ctx.note("local: RabbitMQ is a single node here and is not restarted")
    else:
        nodes = sorted(t.nodes(), key=lambda n: (n == leader.node, any(c.role != "worker" for c in t.components
                                                                       if c.node == n), n))
        comps = [c for n in nodes for c in sorted((c for c in t.components if c.node == n),
                                                  key=lambda c: role_order.index(c.role))]
    for c in comps:
        if c.role == "rabbitmq":
            critical = ctx.wait_for(lambda: _not_quorum_critical(t, c.node), 60, 2)
            if not critical:
                ctx.check(f"{c.node}: RabbitMQ not quorum-critical before its restart", False, "still critical after 60 s")
        fid = ctx.inject(f"restart {c.name}", [c.victim()], lambda c=c: t.stop(c), undo=lambda c=c: t.start(c))
        ctx.heal(fid, label=f"start {c.name}")


def _not_quorum_critical(t: Target, node: str) -> bool:
    try:
        code, _ = t.remote(node, "rabbitmq-diagnostics -q check_if_node_is_quorum_critical", timeout=30, check=False)
    except Exception:
        return True
    return code == 0


ORDER = ["leader-kill", "leader-isolate", "leader-pause", "rabbit-node-kill", "rabbit-partition",
         "worker-power-cut-python", "worker-power-cut-java", "gateway-kill", "full-outage", "rolling-restart"]


def ordered() -> list[Drill]:
    return [CATALOGUE[n] for n in ORDER]
