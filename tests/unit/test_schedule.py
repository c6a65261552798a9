"""The replicated state machine's transitions, driven directly (no Raft, no broker)."""
import pytest

from taskforce.orchestrator.schedule import CONTROL, DEAD, DISPATCH, EVENT, FENCED, Schedule, backoff


def job(jid="j1", **kw):
    spec = {"id": jid, "type": "noop", "payload": {}, "queue": "default", "priority": 5, "max_attempts": 3,
            "timeout_s": 10.0, "run_at": None, "tags": [], "submitted_at": 100.0}
    spec.update(kw)
    return {"v": 1, "kind": "submit", "job": spec}


def ev(kind, jid="j1", attempt=1, gen=0, **kw):
    return {"v": 1, "kind": kind, "job_id": jid, "attempt": attempt, "generation": gen, "worker_id": "w-1",
            "node": "n1", "lang": "python", "ts": 101.0, **kw}


@pytest.fixture
def s():
    s = Schedule(backoff_base=1.0, backoff_max=10.0, retention_s=1000.0, max_retained=1000)
    assert s.begin_epoch(1, "o1") == 1
    return s


def kinds(s):
    return [k for _, k, _ in s.outbox]


def test_submit_dispatches_at_once(s):
    assert s.apply(1, 100.0, [job()], []) == ["accepted"]
    assert s.jobs["j1"]["status"] == "queued" and s.jobs["j1"]["attempt"] == 1
    assert DISPATCH in kinds(s)
    d = [data for _, k, data in s.outbox if k == DISPATCH][0]
    assert d["lane_queue"] == "tf.jobs.default.normal" and d["attempt"] == 1


def test_duplicate_submit_is_a_noop(s):
    s.apply(1, 100.0, [job()], [])
    n = len(s.outbox)
    assert s.apply(1, 100.5, [job()], []) == ["duplicate"]
    assert len(s.outbox) == n


def test_stale_epoch_is_fenced(s):
    assert s.begin_epoch(2, "o2") == 2
    assert s.apply(1, 100.0, [job()], []) == FENCED
    assert "j1" not in s.jobs
    assert s.begin_epoch(2, "o3") == FENCED


def test_full_success_path(s):
    s.apply(1, 100.0, [job()], [])
    s.apply(1, 101.0, [], [ev("started")])
    assert s.jobs["j1"]["status"] == "running" and "j1" in s.running
    s.apply(1, 102.0, [], [ev("succeeded", result={"x": 1})])
    j = s.jobs["j1"]
    assert j["status"] == "succeeded" and j["result"] == {"x": 1} and "j1" not in s.running
    phases = [d["phase"] for _, k, d in s.outbox if k == EVENT]
    assert phases == ["pending", "queued", "running", "succeeded"]


def test_late_started_after_success_changes_nothing(s):
    s.apply(1, 100.0, [job()], [ev("started")])
    s.apply(1, 102.0, [], [ev("succeeded", result=1), ev("started", worker_id="w-2")])
    assert s.jobs["j1"]["status"] == "succeeded"


def test_failure_schedules_backoff_then_retries(s):
    s.apply(1, 100.0, [job()], [ev("started")])
    s.apply(1, 101.0, [], [ev("failed", error={"type": "ValueError", "message": "x"})])
    j = s.jobs["j1"]
    assert j["status"] == "failed" and j["next_run_at"] > 101.0
    s.tick(1, 101.0, [])
    assert s.jobs["j1"]["status"] == "failed"   # not due yet
    s.tick(1, j["next_run_at"] + 0.01, [])
    assert s.jobs["j1"]["status"] == "queued" and s.jobs["j1"]["attempt"] == 2


def test_dead_after_max_attempts_goes_to_dead_letter(s):
    s.apply(1, 100.0, [job(max_attempts=2)], [])
    t = 100.0
    for attempt in (1, 2):
        s.apply(1, t, [], [ev("started", attempt=attempt), ev("failed", attempt=attempt, error={"type": "E", "message": "m"})])
        t += 100
        s.tick(1, t, [])
    assert s.jobs["j1"]["status"] == "dead"
    assert DEAD in kinds(s)


def test_stale_failure_of_an_old_attempt_is_ignored(s):
    s.apply(1, 100.0, [job()], [ev("started"), ev("failed", error={"type": "E", "message": ""})])
    s.tick(1, 200.0, [])
    assert s.jobs["j1"]["attempt"] == 2
    s.apply(1, 201.0, [], [ev("failed", attempt=1, error={"type": "E", "message": "again"})])
    assert s.jobs["j1"]["status"] == "queued" and s.jobs["j1"]["attempt"] == 2


def test_retry_revives_a_dead_job_in_a_new_generation(s):
    s.apply(1, 100.0, [job(max_attempts=1)], [ev("started"), ev("failed", error={"type": "E", "message": ""})])
    assert s.jobs["j1"]["status"] == "dead"
    assert s.apply(1, 150.0, [{"kind": "retry", "job_id": "j1"}], []) == ["revived"]
    j = s.jobs["j1"]
    assert j["status"] == "queued" and j["generation"] == 1 and j["attempt"] == 1
    s.apply(1, 151.0, [], [ev("succeeded", gen=0, result=1)])   # a straggler of the old generation
    assert s.jobs["j1"]["status"] == "queued"


def test_cancel_queued_and_running(s):
    s.apply(1, 100.0, [job("a"), job("b")], [ev("started", jid="b")])
    assert s.apply(1, 101.0, [{"kind": "cancel", "job_id": "a"}, {"kind": "cancel", "job_id": "b"}], []) == \
        ["cancelled", "cancelled-running"]
    assert s.jobs["a"]["status"] == s.jobs["b"]["status"] == "cancelled"
    assert kinds(s).count(CONTROL) == 2
    s.apply(1, 102.0, [], [ev("failed", jid="b", error={"type": "Cancelled", "message": ""})])
    assert s.jobs["b"]["status"] == "cancelled"
    assert s.apply(1, 103.0, [{"kind": "cancel", "job_id": "a"}], []) == ["terminal"]


def test_delayed_job_waits_for_run_at(s):
    s.apply(1, 100.0, [job(run_at=130.0)], [])
    assert s.jobs["j1"]["status"] == "pending" and DISPATCH not in kinds(s)
    s.tick(1, 129.9, [])
    assert s.jobs["j1"]["status"] == "pending"
    s.tick(1, 130.0, [])
    assert s.jobs["j1"]["status"] == "queued"


def test_deadline_expiry_counts_as_a_failed_attempt(s):
    s.apply(1, 100.0, [job()], [ev("started")])
    s.tick(1, 200.0, [("j1", 1, 0)])
    assert s.jobs["j1"]["status"] == "failed" and s.jobs["j1"]["error"]["type"] == "Timeout"


def test_outbox_ack_trims_and_remembers(s):
    s.apply(1, 100.0, [job()], [])
    top = s.outbox[-1][0]
    s.outbox_ack(1, top)
    assert not s.outbox and s.outbox_done == top


def test_compaction_forgets_old_finished_jobs(s):
    s.apply(1, 100.0, [job()], [ev("started"), ev("succeeded", result=1)])
    s.tick(1, 500.0, [])
    assert "j1" in s.jobs
    s.tick(1, 2000.0, [])
    assert "j1" not in s.jobs


def test_list_paginates_with_a_cursor(s):
    s.apply(1, 100.0, [job(f"j{i}") for i in range(5)], [])
    page, cur = s.list(limit=2)
    assert [r["id"] for r in page] == ["j0", "j1"]
    page2, cur2 = s.list(limit=2, after=cur)
    assert [r["id"] for r in page2] == ["j2", "j3"]


def test_backoff_is_deterministic_and_bounded():
    assert backoff("a", 3, 1.0, 10.0) == backoff("a", 3, 1.0, 10.0)
    for a in range(1, 12):
        assert 0 < backoff("x", a, 1.0, 10.0) <= 10.0
    assert backoff("x", 1, 1.0, 100.0) < 2.0 <= backoff("x", 5, 1.0, 100.0) * 2
