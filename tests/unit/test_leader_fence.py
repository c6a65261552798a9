"""The stale leader's outbox fence (orchestrator/leader.py, _pump), on a real Schedule."""
import json
import threading
from types import SimpleNamespace

import pytest

from taskforce.orchestrator.leader import Leader, StepDown
from taskforce.orchestrator.schedule import Schedule

from .test_schedule import job


class NoBroker:
    def __init__(self):
        self.published = []

    def publish(self, *args, **kw):
        self.published.append(args)

    def wait(self, timeout):
        pass


def leader_of(epoch, schedule):
    ld = Leader.__new__(Leader)   # no config, no Raft node, no connection: only the pump's inputs
    ld.state = SimpleNamespace(lock=threading.RLock(), s=schedule)
    ld.epoch, ld.published_upto, ld.inherited_upto, ld.lanes_declared = epoch, 0, 0, set()
    ld.became_leader_at = 0.0
    ld.pub = NoBroker()
    return ld


def test_a_leader_whose_epoch_was_superseded_publishes_nothing():
    s = Schedule(backoff_base=1.0, backoff_max=10.0, retention_s=1000.0, max_retained=1000)
    s.begin_epoch(1, "o1")
    s.begin_epoch(2, "o2")                       # a newer leader took over ...
    assert s.apply(2, 100.0, [job()], []) == ["accepted"]   # ... and dispatched a job
    old = leader_of(1, s)
    with pytest.raises(StepDown, match="epoch 2"):
        old._pump()
    assert old.pub.published == []


def test_a_new_leader_holds_inherited_dispatches_and_then_skips_those_that_started(monkeypatch):
    import time as _time

    from taskforce.orchestrator import leader as leader_mod

    from .test_schedule import ev
    s = Schedule(backoff_base=1.0, backoff_max=10.0, retention_s=1000.0, max_retained=1000)
    s.begin_epoch(1, "o1")
    s.apply(1, 100.0, [job("a"), job("b")], [])   # published by leader 1, never watermarked
    s.begin_epoch(2, "o2")
    new = leader_of(2, s)
    new.inherited_upto = max(e[0] for e in s.outbox)
    new.became_leader_at = _time.time()
    new._pump()
    assert new.pub.published == [] and new.published_upto == 0   # still listening
    s.apply(2, 101.0, [], [ev("started", jid="a")])               # a's first copy runs
    new.became_leader_at -= leader_mod.REPUBLISH_GRACE_S
    new.ch = new.evpub = None
    new.raft = SimpleNamespace(commit_timeout_s=1.0)
    monkeypatch.setattr(leader_mod.topo, "declare_lanes", lambda ch, q: None)
    monkeypatch.setattr(leader_mod, "publish_unflushed", lambda *a, **k: None)
    new._commit_async = lambda *a: None
    new.state.outbox_ack = None
    new._pump()
    dispatched = [args[1] for args in new.pub.published]
    assert dispatched == ["tf.jobs.default.normal"]               # only b goes out again
    assert json.loads(new.pub.published[0][2])["id"] == "b"
