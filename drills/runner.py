"""Runs one drill: health gate, workload, the drill's faults, recovery, deadline, verdict.

    refuse unless healthy -> load (warm-up) -> faults and heals (the drill's own schedule)
    -> load after the last heal -> stop submitting -> wait for every accepted job to finish,
    up to a deadline -> final sweep -> checker -> results.json, history.jsonl, timeline.png
"""
from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from .checker import check
from .history import History
from .targets.base import Component, Refused, Target
from .workload import JobKind, Workload, WorkloadConfig


@dataclass
class RunParams:
    rate: float = 10.0
    warmup_s: float = 8.0
    post_s: float = 10.0          # load after the last heal
    settle_s: float = 120.0       # after the load stops, how long accepted jobs have to finish
    recover_s: float = 180.0      # after a heal, how long the cluster has to be healthy again
    precheck_s: float = 60.0      # how long to wait for health before refusing
    hold_s: Optional[float] = None   # override each drill's own fault duration
    flush_s: float = 1.0             # for the last execution lines to reach their logs
    mix: str = "routed"              # routed | explicit | common (catalogue.default_mix)
    seed: int = 1


class Ctx:
    """What a drill's schedule sees: the target, its parameters and the fault recorder."""

    def __init__(self, target: Target, history: History, params: RunParams, workload: Workload) -> None:
        self.target, self.history, self.p, self.workload = target, history, params, workload
        self._fault_ids = 0
        self.notes: list[str] = []
        self.open_faults: dict[int, Callable[[], None]] = {}

    def hold_for(self, default: float) -> float:
        return self.p.hold_s if self.p.hold_s is not None else default

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.history.add("note", text=text)
        print(f"    {text}", flush=True)

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.history.add("check", name=name, ok=bool(ok), detail=detail)
        print(f"    [{'ok' if ok else 'FAIL'}] {name}{': ' + detail if detail else ''}", flush=True)

    def inject(self, label: str, victims: list[dict], action: Callable[[], None],
               undo: Optional[Callable[[], None]] = None) -> int:
        """Run the fault and record it. The fault's time is when the action returned, so the
        failover times measured from it are, if anything, slightly short."""
        self._fault_ids += 1
        fid = self._fault_ids
        t0 = time.time()
        action()
        t1 = time.time()
        self.history.add("fault", t=t1, event="inject", fault_id=fid, label=label, victims=victims,
                         action_s=round(t1 - t0, 3))
        print(f"  fault {fid}: {label} ({t1 - t0:.2f}s to inject)", flush=True)
        if undo is not None:
            self.open_faults[fid] = undo
        return fid

    def heal(self, fid: int, action: Optional[Callable[[], None]] = None, label: str = "",
             wait_healthy: bool = True) -> Optional[float]:
        action = action or self.open_faults.get(fid)
        t0 = time.time()
        if action is not None:
            action()
        self.open_faults.pop(fid, None)
        t1 = time.time()
        self.history.add("fault", t=t1, event="heal", fault_id=fid, label=label, action_s=round(t1 - t0, 3))
        print(f"  heal {fid}{' (' + label + ')' if label else ''} ({t1 - t0:.2f}s)", flush=True)
        return self.await_healthy(fid) if wait_healthy else None

    def await_healthy(self, fid: Optional[int] = None) -> Optional[float]:
        t_start = time.time()
        end = t_start + self.p.recover_s
        reasons: list[str] = []
        while time.time() < end:
            reasons = self.target.health()
            self.history.add("health", ok=not reasons, reasons=reasons[:5], phase="recovery", fault_id=fid)
            if not reasons:
                dt = time.time() - t_start
                print(f"  healthy again after {dt:.1f}s", flush=True)
                return dt
            time.sleep(1.0)
        try:   # the broker's own view is skipped while cheaper checks fail; say it now
            reasons += [r for r in self.target.extra_health() if r not in reasons]
        except Exception:
            pass
        self.check(f"cluster healthy again within {self.p.recover_s:.0f}s", False, "; ".join(reasons[:4]))
        return None

    def hold(self, seconds: float) -> None:
        time.sleep(seconds)

    def wait_for(self, pred: Callable[[], Any], timeout: float, every: float = 0.5) -> Any:
        end = time.time() + timeout
        while time.time() < end:
            v = pred()
            if v:
                return v
            time.sleep(every)
        return None

    def epoch(self) -> Optional[int]:
        return self.target.cluster().epoch

    def wait_new_leader(self, epoch0: Optional[int], timeout: float = 30.0, avoid: Optional[Component] = None):
        """Sample GET /v1/cluster every 0.25 s, several samples in flight at once: while an
        orchestrator hangs, one sample takes as long as the gateway waits for it (3 s), and
        samples one after another would blur the failover time by that much."""
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        def sample():
            v = self.target.cluster(timeout=4.0)
            self.history.add("cluster", t=v.t, gw=v.gateway, leader=v.leader, epoch=v.epoch, term=v.term,
                             leaders=v.self_declared_leaders, unreachable=len(v.unreachable), error=v.error,
                             src="drill")
            return v

        t0 = time.time()
        found = None
        pending: set = set()
        with ThreadPoolExecutor(max_workers=16) as pool:
            while found is None and time.time() < t0 + timeout:
                pending.add(pool.submit(sample))
                done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                for f in done:
                    v = f.result()
                    if v.leader and v.epoch is not None and epoch0 is not None and v.epoch > epoch0:
                        if found is None or v.t < found.t:
                            found = v
            for f in pending:
                f.cancel()
        name = f"a new leader committed an epoch within {timeout:.0f}s"
        if found is None:
            self.check(name, False, f"still epoch {epoch0}")
            return None
        who = self.target.orchestrator_at(found.leader)
        self.check(name, True, f"{who.name if who else found.leader}, epoch {epoch0} -> {found.epoch}, "
                               f"seen in a sample taken {found.t - t0:.1f}s after the fault")
        if avoid is not None and who is not None and who.name == avoid.name:
            self.check("the new leader is not the faulted one", False, who.name)
        return found


@dataclass
class DrillResult:
    name: str
    status: str                      # passed | failed | refused | unsupported | error
    reason: str = ""
    target: str = ""
    started: float = 0.0
    duration_s: float = 0.0
    params: dict = field(default_factory=dict)
    verdict: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    summary: str = ""
    history_file: str = ""
    timeline_png: str = ""


def run_drill(drill, target: Target, params: RunParams, out_dir: Path) -> DrillResult:
    from .plot import timeline_png
    res = DrillResult(drill.name, "refused", target=target.describe(), started=time.time(),
                      params=asdict(params), summary=drill.summary)
    missing = drill.needs - target.capabilities
    if missing:
        res.status, res.reason = "unsupported", (f"the {target.kind} back end cannot {', '.join(sorted(missing))}; "
                                                 f"run it against the lab or real machines (--inventory)")
        print(f"== {drill.name}: skipped: {res.reason}", flush=True)
        return res
    print(f"== {drill.name}: {drill.summary}", flush=True)
    ok, reasons = target.wait_healthy(params.precheck_s)
    if not ok:
        res.reason = "the cluster is not healthy, so the drill did not start: " + "; ".join(reasons)
        print(f"   refused: {res.reason}", flush=True)
        return res
    try:
        drill.prepare(target)
    except Refused as e:
        res.reason = str(e)
        print(f"   refused: {res.reason}", flush=True)
        return res

    ddir = out_dir / drill.name
    ddir.mkdir(parents=True, exist_ok=True)
    history = History(ddir / "history.jsonl")
    run_tag = f"drill-{drill.name}-{secrets.token_hex(3)}"
    history.add("mark", what="drill-start", run_tag=run_tag, drill=drill.name, target=target.describe())
    history.add("health", ok=True, reasons=[], phase="pre")
    wcfg = WorkloadConfig(rate=params.rate, mix=drill.mix(target, params.mix), seed=params.seed)
    execs = target.executions(history, since=time.time())
    workload = Workload(target, history, wcfg, run_tag).start()
    ctx = Ctx(target, history, params, workload)
    res.status = "running"
    try:
        history.add("mark", what="load-start")
        time.sleep(params.warmup_s)
        try:
            drill.schedule(ctx)
        except Exception as e:
            # The schedule broke (a node that would not boot, say): record it, heal what is
            # left, and still let accepted jobs finish, so that the counts mean something.
            res.status, res.reason = "error", f"{type(e).__name__}: {e}"
            history.add("mark", what="error", error=res.reason)
            print(f"   error: {res.reason}", flush=True)
        finally:
            for fid in list(ctx.open_faults):   # never leave a fault behind, whatever happened
                try:
                    ctx.heal(fid, label="cleanup")
                except Exception as e:
                    ctx.note(f"cleanup of fault {fid} failed: {e!r}")
        time.sleep(params.post_s)
        history.add("mark", what="load-stop")
        workload.stop_submits()
        left = workload.wait_terminal(time.time() + params.settle_s)
        history.add("mark", what="deadline", pending=len(left))
        workload.final_sweep()
        if any(e["outcome"] != "accepted" for e in history.of("submit")):
            workload.sweep_unanswered()
        drill.post(ctx)
    except Exception as e:
        res.status, res.reason = "error", f"{type(e).__name__}: {e}"
        history.add("mark", what="error", error=res.reason)
        print(f"   error: {res.reason}", flush=True)
        import traceback
        traceback.print_exc()
    finally:
        time.sleep(params.flush_s)
        workload.stop()
        execs.stop()
        history.add("mark", what="drill-end")
        history.close()
    res.verdict = check(history.entries)
    res.notes = ctx.notes
    res.duration_s = round(time.time() - res.started, 1)
    res.history_file = str(ddir / "history.jsonl")
    if res.status != "error":
        res.status = "passed" if res.verdict["ok"] else "failed"
    try:
        res.timeline_png = timeline_png(history.entries, ddir / "timeline.png", f"{drill.name} on {target.kind}")
    except Exception as e:   # a missing plotting library must not hide the verdict
        res.notes.append(f"no timeline picture: {e!r}")
    (ddir / "result.json").write_text(json.dumps(asdict(res), indent=2, default=str))
    c = res.verdict["counts"]
    print(f"   {res.status.upper()}: accepted {c['accepted']}, completed {c['completed']}, lost {c['lost']}, "
          f"duplicated {c['duplicated_jobs']} ({c['duplicates_unexplained']} unexplained), stuck {c['stuck']}, "
          f"unexpected {c['unexpected']}, failed tries told {c['failed_tries_told']} / dropped {c['failed_tries_dropped']}",
          flush=True)
    for inv in res.verdict["invariants"]:
        if not inv["ok"]:
            print(f"   broken: {inv['name']}: {inv['detail']}", flush=True)
    return res
