"""The runner end to end against a fake cluster: a drill passes when nothing goes wrong, and
fails, with the right count, when the cluster loses a job or runs one twice outside any fault;
it refuses to start on an unhealthy cluster. Each test takes a few seconds."""
import json

import pytest

from drills import report
from drills.catalogue import Drill
from drills.runner import RunParams, run_drill
from drills.targets.base import CRASH
from drills.workload import JobKind

from .fake_cluster import FakeCluster, FakeTarget

FAST = RunParams(rate=40, warmup_s=0.5, post_s=0.5, settle_s=2, recover_s=5, precheck_s=0.5, flush_s=0.2)


def worker_crash(ctx):
    w = ctx.target.of("worker")[0]
    fid = ctx.inject("crash w1", [w.victim()], lambda: ctx.target.crash(w), undo=lambda: ctx.target.start(w))
    ctx.hold(0.5)
    ctx.heal(fid)


DRILL = Drill("fake-worker-crash", "a crash that changes nothing", frozenset({CRASH}), worker_crash,
              mix_fn=lambda t, mix="routed": [JobKind("noop")])


@pytest.fixture
def fake(tmp_path):
    f = FakeCluster(tmp_path / "logs")
    yield f
    f.close()


def test_a_drill_against_a_faithful_cluster_passes_with_consistent_counts(fake, tmp_path):
    t = FakeTarget(fake)
    r = run_drill(DRILL, t, FAST, tmp_path / "out")
    c = r.verdict["counts"]
    assert r.status == "passed", r.verdict["invariants"]
    assert c["accepted"] > 20 and c["completed"] == c["accepted"] == c["executions"]
    assert c["lost"] == c["duplicated_jobs"] == c["unexpected"] == 0
    assert t.crashed == []                                    # the fault was healed
    f = r.verdict["faults"][0]
    assert f["label"] == "crash w1" and f["heal_to_healthy_s"] is not None and f["first_accept_s"] < 1
    assert (tmp_path / "out" / "fake-worker-crash" / "history.jsonl").exists()
    saved = json.loads((tmp_path / "out" / "fake-worker-crash" / "result.json").read_text())
    assert saved["status"] == "passed"
    md = report.write([r], tmp_path / "out", "fake", {DRILL.name: DRILL}).read_text()
    assert "| fake-worker-crash | passed |" in md


def test_a_lost_job_fails_the_drill(fake, tmp_path):
    fake.lose_next = 1
    r = run_drill(DRILL, FakeTarget(fake), FAST, tmp_path / "out")
    assert r.status == "failed"
    assert r.verdict["counts"]["lost"] == 1 and r.verdict["counts"]["stuck"] == 1


def test_a_job_run_twice_on_a_healthy_worker_fails_the_drill(fake, tmp_path):
    fake.run_twice_next = 1
    quiet = Drill("fake-quiet", "no fault at all", frozenset(), lambda ctx: None,
                  mix_fn=lambda t, mix="routed": [JobKind("noop")])
    r = run_drill(quiet, FakeTarget(fake), FAST, tmp_path / "out")
    assert r.status == "failed"
    assert r.verdict["counts"]["duplicates_unexplained"] == 1


def test_an_unhealthy_cluster_is_refused_with_the_reason(fake, tmp_path):
    fake.ready = False
    r = run_drill(DRILL, FakeTarget(fake), FAST, tmp_path / "out")
    assert r.status == "refused"
    assert "not healthy" in r.reason and "gw1 not ready" in r.reason


def test_a_drill_the_back_end_cannot_run_is_unsupported(fake, tmp_path):
    d = Drill("needs-partition", "x", frozenset({"partition"}), lambda ctx: None)
    r = run_drill(d, FakeTarget(fake), FAST, tmp_path / "out")
    assert r.status == "unsupported" and "cannot partition" in r.reason
