"""The checker against synthetic histories: each test builds the history a drill would record
in one situation and asserts the verdict a user relies on."""
from drills.checker import check, status_key


class H:
    """Builds a history the way the workload, the injector and the runner record it."""

    def __init__(self) -> None:
        self.e: list[dict] = [{"t": 0.0, "type": "mark", "what": "drill-start", "run_tag": "drill-x"}]

    def add(self, type_, t, **kw):
        self.e.append({"t": t, "type": type_, **kw})
        return self

    def op(self, n, t):
        return self.add("op", t, op=n, key=f"k{n}", job={"type": "noop"})

    def submit(self, n, t, outcome, jid=None, code=None, error_kind=None, gw="gw1"):
        return self.add("submit", t, op=n, t_end=t + 0.05, gw=gw, outcome=outcome, id=jid,
                        code=code if code is not None else (202 if outcome == "accepted" else None),
                        error_kind=error_kind)

    def state(self, jid, t, phase, attempt=1, src="sse:gw1", op=None, gen=0):
        return self.add("state", t, id=jid, phase=phase, attempt=attempt, gen=gen, src=src, op=op)

    def exec(self, jid, t, node="w1", attempt=1):
        return self.add("exec", t, id=jid, attempt=attempt, node=node, worker_id=f"{node}-py-1")

    def fault(self, fid, inject, heal, roles, node="n1", label=None):
        v = [{"node": node, "roles": roles}]
        self.add("fault", inject, event="inject", fault_id=fid, label=label or f"f{fid}", victims=v)
        if heal is not None:
            self.add("fault", heal, event="heal", fault_id=fid, label=label or f"f{fid}", victims=v)
        return self

    def job(self, n, t, jid=None, node="w1", done=True):
        jid = jid or f"j{n}"
        self.op(n, t).submit(n, t, "accepted", jid)
        self.state(jid, t + 0.1, "pending", 0, op=n).state(jid, t + 0.2, "queued", op=n)
        self.state(jid, t + 0.3, "running", op=n).exec(jid, t + 0.3, node)
        if done:
            self.state(jid, t + 0.5, "succeeded", op=n)
        return self

    def deadline(self, t):
        return self.add("mark", t, what="deadline")


def test_a_clean_run_counts_everything_and_passes():
    h = H()
    for n in range(5):
        h.job(n, 1.0 + n)
    r = check(h.deadline(100).e)
    c = r["counts"]
    assert r["ok"], r["invariants"]
    assert (c["ops"], c["accepted"], c["completed"], c["lost"], c["duplicated_jobs"], c["stuck"]) == (5, 5, 5, 0, 0, 0)
    assert c["executions"] == 5


def test_an_accepted_job_never_terminal_is_lost_and_fails_the_drill():
    h = H().job(1, 1.0).job(2, 2.0, done=False)
    h.op(3, 3.0).submit(3, 3.0, "accepted", "j3")          # accepted, never seen again
    r = check(h.deadline(50).e)
    assert not r["ok"]
    assert r["counts"]["lost"] == 2
    assert r["counts"]["lost_never_seen"] == 1
    assert r["counts"]["stuck"] == 1                      # j2: the cluster still says running
    assert r["samples"]["lost"] == ["j2", "j3"]
    assert next(i for i in r["invariants"] if i["name"] == "no accepted job lost")["ok"] is False


def test_terminal_after_the_deadline_does_not_count_but_a_final_sweep_does():
    h = H().job(1, 1.0, done=False).state("j1", 60.0, "succeeded", op=1)
    assert check(h.deadline(50).e)["counts"]["lost"] == 1
    h = H().job(1, 1.0, done=False).add("final", 50.0, id="j1", status="succeeded", attempt=1)
    r = check(h.deadline(50).e)
    assert r["counts"]["lost"] == 0 and r["counts"]["completed"] == 1 and r["ok"]


def test_duplicate_on_the_power_cut_worker_is_explained():
    h = H().job(1, 10.0, node="worker1")
    h.exec("j1", 25.0, node="worker2")                    # redelivered after the cut
    h.fault(1, 10.4, 20.0, ["worker"], node="worker1").add("health", 22.0, ok=True)
    r = check(h.deadline(100).e)
    assert r["ok"], r["invariants"]
    assert r["counts"]["duplicated_jobs"] == 1
    assert r["counts"]["duplicates_explained"] == 1
    assert r["duplicates"]["explained_by_fault"] == {"f1": 1}


def test_duplicate_whose_first_run_was_on_a_healthy_worker_is_not_explained():
    h = H().job(1, 10.0, node="worker2")
    h.exec("j1", 12.0, node="worker2")
    h.fault(1, 10.4, 20.0, ["worker"], node="worker1")
    r = check(h.deadline(100).e)
    assert not r["ok"]
    assert r["counts"]["duplicates_unexplained"] == 1
    assert r["duplicates"]["unexplained"][0]["id"] == "j1"


def test_duplicate_with_no_fault_at_all_breaks_the_invariant():
    h = H().job(1, 1.0).exec("j1", 1.4)
    r = check(h.deadline(100).e)
    assert not r["ok"] and r["counts"]["duplicate_executions"] == 1


def test_leader_failover_excuses_jobs_in_flight_but_not_jobs_done_before_it():
    h = H().job(1, 30.0).exec("j1", 36.0)                 # in flight at the kill: republished
    h.job(2, 1.0).exec("j2", 36.0)                        # finished at 1.5, long before: a bug
    h.fault(1, 30.2, 40.0, ["orchestrator"], node="core1", label="kill leader")
    r = check(h.deadline(100).e)
    assert r["counts"]["duplicates_explained"] == 1
    assert [u["id"] for u in r["duplicates"]["unexplained"]] == ["j2"]
    assert not r["ok"]


def test_a_gateway_fault_excuses_no_duplicate():
    h = H().job(1, 10.0).exec("j1", 11.0)
    h.fault(1, 10.1, 15.0, ["gateway"], node="core2")
    assert check(h.deadline(100).e)["counts"]["duplicates_unexplained"] == 1


def test_unexpected_jobs_are_classified_by_what_the_client_was_told():
    h = H()
    h.op(1, 1.0).submit(1, 1.0, "told", code=503).submit(1, 2.0, "told", code=503)
    h.state("a", 3.0, "succeeded", op=1)
    h.op(2, 1.0).submit(2, 1.0, "dropped", error_kind="timeout")
    h.state("b", 3.0, "succeeded", op=2)
    h.state("c", 3.0, "succeeded", op=3)                  # a job of this drill that nobody submitted
    h.state("other", 3.0, "succeeded")                    # another drill's job: not ours, ignored
    r = check(h.deadline(10).e)
    c = r["counts"]
    assert (c["unexpected"], c["unexpected_after_503"], c["unexpected_no_answer"]) == (3, 1, 1)
    assert r["samples"]["unexpected"]["phantom"] == ["c"]
    assert not r["ok"]                                    # the phantom breaks an invariant
    assert c["failed_ops_told"] == 1 and c["failed_ops_dropped"] == 1


def test_failed_tries_are_told_or_dropped_and_failover_is_counted():
    h = H()
    h.op(1, 1.0).submit(1, 1.0, "dropped", error_kind="refused", gw="gw1").submit(1, 1.1, "accepted", "j1", gw="gw2")
    h.op(2, 2.0).submit(2, 2.0, "told", code=503).submit(2, 2.5, "accepted", "j2")
    h.op(3, 3.0).submit(3, 3.0, "dropped", error_kind="timeout")
    for j in ("j1", "j2"):
        h.state(j, 5.0, "succeeded").exec(j, 4.0)
    r = check(h.deadline(10).e)
    c = r["counts"]
    assert (c["failed_tries_told"], c["failed_tries_dropped"], c["failovers"]) == (1, 2, 2)
    assert r["failed_submits"]["dropped_by_error"] == {"refused": 1, "timeout": 1}
    assert r["failed_submits"]["told_by_code"] == {"503": 1}
    assert c["accepted"] == 2 and c["failed_ops_dropped"] == 1 and r["ok"]


def test_one_key_that_yields_two_ids_is_caught():
    h = H().job(1, 1.0, jid="a")
    h.submit(1, 1.2, "accepted", "b")
    h.state("b", 1.5, "succeeded", op=1).exec("b", 1.4)
    r = check(h.deadline(10).e)
    assert not r["ok"]
    assert "one Idempotency-Key, one job id" in [i["name"] for i in r["invariants"] if not i["ok"]]


def test_a_job_moving_backwards_on_an_sse_stream_is_a_regression_but_a_lagging_poll_is_not():
    h = H().job(1, 1.0)
    h.state("j1", 2.0, "running", src="poll")            # a follower's stale read: allowed
    assert check(h.deadline(10).e)["ok"]
    h.state("j1", 2.1, "running", src="sse:gw1")
    r = check(h.deadline(10).e)
    assert r["counts"]["regressions"] == 1 and not r["ok"]


def test_a_retry_moves_forward_not_backwards():
    assert status_key(0, 2, "queued") > status_key(0, 1, "failed")
    assert status_key(0, 1, "succeeded") > status_key(0, 3, "running")
    assert status_key(1, 1, "queued") > status_key(0, 5, "dead")


def test_timings_of_a_leader_kill():
    h = H()
    for k in range(10):
        h.add("cluster", 1.0 + k, leader="core1:7000", epoch=3)
    h.job(1, 5.0)                                         # completes at 5.5
    h.fault(1, 10.0, 30.0, ["orchestrator"], node="core1")
    h.add("cluster", 11.0, leader=None, epoch=3).add("cluster", 12.5, leader="core2:7000", epoch=4)
    h.job(2, 10.5)                                        # accepted 0.55 s after the kill ...
    h.state("j2", 14.0, "succeeded", op=2)                # ... completes 4 s after it
    h.job(3, 20.0).job(4, 28.0).job(5, 34.0)
    h.add("health", 29.0, ok=True).add("health", 33.0, ok=True)
    r = check(h.deadline(100).e)
    f = r["faults"][0]
    assert f["leader_before"] == "core1:7000" and f["new_leader"] == "core2:7000"
    assert f["new_leader_s"] == 2.5
    assert f["first_accept_s"] == 0.55
    assert f["first_completion_s"] == 1.0                 # j2's first terminal state at 11.0
    assert f["heal_to_healthy_s"] == 3.0
    assert f["completion_gap_s"] == 9.5                   # 11.0 -> 20.5


def test_no_completion_after_a_fault_gives_the_gap_until_healthy():
    h = H().job(1, 1.0)
    h.fault(1, 10.0, 20.0, ["rabbitmq"]).add("health", 25.0, ok=True)
    f = check(h.deadline(100).e)["faults"][0]
    assert f["completion_gap_s"] == 23.5 and f["first_completion_s"] is None and f["new_leader_s"] is None


def test_drill_specific_checks_become_invariants():
    h = H().job(1, 1.0).add("check", 5.0, name="pause_minority held", ok=False, detail="core3 kept running")
    r = check(h.deadline(10).e)
    assert not r["ok"]
    assert {"name": "pause_minority held", "ok": False, "detail": "core3 kept running"} in r["invariants"]


def test_a_dead_job_fails_the_drill():
    h = H().job(1, 1.0, done=False).state("j1", 3.0, "dead", attempt=3, op=1)
    r = check(h.deadline(10).e)
    assert r["counts"]["dead"] == 1 and r["counts"]["lost"] == 0 and not r["ok"]


def test_a_completed_job_without_any_execution_line_is_suspicious():
    h = H().op(1, 1.0).submit(1, 1.0, "accepted", "j1").state("j1", 2.0, "succeeded", op=1)
    r = check(h.deadline(10).e)
    assert not r["ok"] and r["counts"]["executions"] == 0


def test_a_later_leader_change_is_not_blamed_on_an_earlier_fault():
    h = H().add("cluster", 1.0, leader="a:1", epoch=1)
    h.fault(1, 10.0, 12.0, ["worker"]).add("health", 13.0, ok=True)        # a worker restart
    h.fault(2, 20.0, 22.0, ["orchestrator"]).add("cluster", 21.0, leader="b:1", epoch=2).add("health", 24.0, ok=True)
    f1, f2 = check(h.deadline(100).e)["faults"]
    assert f1["new_leader_s"] is None and f2["new_leader_s"] == 1.0


def test_a_leader_change_no_fault_caused_is_reported_beside_the_duplicates_it_made():
    # A spontaneous election republishes the outbox: the duplicate stays unexplained (no
    # machine died), but the report says what happened around it.
    h = H().add("cluster", 1.0, leader="a:1", epoch=3)
    h.job(1, 30.0).exec("j1", 30.6)
    h.add("cluster", 30.55, leader="b:1", epoch=4)
    h.fault(1, 5.0, 8.0, ["gateway"]).add("health", 9.0, ok=True)
    r = check(h.deadline(100).e)
    assert r["counts"]["unscheduled_leader_changes"] == 1 and r["counts"]["leader_changes"] == 1
    assert r["counts"]["duplicates_unexplained"] == 1 and not r["ok"]
    u = r["duplicates"]["unexplained"][0]
    assert u["near_unscheduled_election"]["epoch"] == 4
    assert "within 10 s of a leader change that no fault caused" in next(
        i["detail"] for i in r["invariants"] if i["name"] == "no unexplained duplicate execution")


def test_a_leader_change_during_a_fault_is_scheduled():
    h = H().add("cluster", 1.0, leader="a:1", epoch=3)
    h.fault(1, 10.0, 20.0, ["orchestrator"]).add("cluster", 12.0, leader="b:1", epoch=4).add("health", 22.0, ok=True)
    c = check(h.deadline(100).e)["counts"]
    assert (c["leader_changes"], c["unscheduled_leader_changes"]) == (1, 0)


def test_a_leader_change_during_a_gateway_fault_is_not_the_gateway_s_doing():
    h = H().add("cluster", 1.0, leader="a:1", epoch=3)
    h.fault(1, 10.0, 20.0, ["gateway"]).add("cluster", 21.0, leader="b:1", epoch=4).add("health", 25.0, ok=True)
    assert check(h.deadline(100).e)["counts"]["unscheduled_leader_changes"] == 1


def test_a_fault_the_cluster_never_recovered_from_lasts_until_the_last_health_check():
    h = H().add("cluster", 1.0, leader="a:1", epoch=3)
    h.fault(1, 10.0, 20.0, ["rabbitmq", "orchestrator"], node="core3")
    for t in range(21, 200, 10):
        h.add("health", float(t), ok=False, reasons=["no live worker"], fault_id=1)
    h.add("cluster", 60.0, leader="b:1", epoch=4)                       # the rejoin deposes the leader
    h.job(1, 59.0).exec("j1", 60.5)
    r = check(h.deadline(300).e)
    assert r["counts"]["unscheduled_leader_changes"] == 0
    assert r["counts"]["duplicates_explained"] == 1 and r["counts"]["duplicates_unexplained"] == 0
