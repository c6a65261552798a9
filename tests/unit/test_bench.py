"""The benchmark's pure logic: percentiles, windowed throughput, CPU accounting, the verdict
against the targets, the placement of worker processes and the profile summary."""
from __future__ import annotations

import pytest

from bench.profile import summarise as profile_summary
from bench.run import spread
from bench.stats import cpu_delta, cpu_per_1000, group_cpu, latencies, percentile, throughput
from bench.summary import summarise


def test_percentile_is_nearest_rank():
    xs = list(range(1, 101))
    assert percentile(xs, 50) == 50
    assert percentile(xs, 99) == 99
    assert percentile(xs, 100) == 100
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_throughput_counts_only_the_window():
    done = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 9.0]
    assert throughput(done, 1.0, 3.0) == pytest.approx(4 / 2.0)   # 1.0, 1.5, 2.0, 2.5
    with pytest.raises(ValueError):
        throughput(done, 3.0, 3.0)


def test_latencies_use_the_client_submit_time_and_skip_unfinished_jobs():
    submitted = {"a": 10.0, "b": 20.0, "c": 30.0}
    stamps = {"a": (10.010, 10.020), "b": (20.030, 20.050)}
    lat = latencies(submitted, stamps)
    assert lat["jobs"] == 3 and lat["completed"] == 2
    assert lat["submit_to_start_p50_ms"] == pytest.approx(10.0)
    assert lat["submit_to_start_p99_ms"] == pytest.approx(30.0)
    assert lat["submit_to_done_p99_ms"] == pytest.approx(50.0)


def test_cpu_per_component_and_per_thousand_jobs():
    before = {"core1/rabbitmq": 10.0, "core2/rabbitmq": 5.0, "worker1/worker": 1.0, "gone/x": 3.0}
    after = {"core1/rabbitmq": 12.0, "core2/rabbitmq": 6.0, "worker1/worker": 4.0, "new/y": 1.0}
    per = group_cpu(cpu_delta(before, after))
    assert per == {"rabbitmq": 3.0, "worker": 3.0}
    assert cpu_per_1000(per, 2000) == {"rabbitmq": 1.5, "worker": 1.5, "total": 3.0}
    assert cpu_per_1000(per, 0) == {}


def test_a_restarted_unit_whose_counter_went_back_is_not_counted_negative():
    assert cpu_delta({"a/x": 10.0}, {"a/x": 2.0}) == {}


def _round(jps: float, total: float = 1.0) -> dict:
    return {"jobs_per_s": jps, "cpu_per_1000": {"rabbitmq": total / 2, "worker": total / 2, "total": total}}


def test_summary_ratios_and_targets_come_from_the_same_run():
    res = {"throughput": {"raw": [_round(1000), _round(1200)], "taskforce": [_round(300), _round(500)],
                          "celery": [_round(350), _round(450)]},
           "latency": {"taskforce": {"submit_to_start_p99_ms": 60.0}}}
    s = summarise(res)
    assert s["throughput"] == {"raw": 1100, "taskforce": 400, "celery": 400}
    met = {t["name"]: (t["value"], t["met"]) for t in s["targets"]}
    assert met["TaskForce / Celery throughput"] == (1.0, True)
    assert met["TaskForce / raw throughput"] == (pytest.approx(0.364, abs=1e-3), False)
    assert met["TaskForce p99 submit→start at half load (ms)"] == (60.0, False)
    assert [r["tf_over_celery"] for r in s["per_round"]] == [pytest.approx(0.857, abs=1e-3), pytest.approx(1.111, abs=1e-3)]
    assert s["cpu_components"] == ["rabbitmq", "worker"]


def test_a_missing_system_leaves_its_ratio_unmet_not_faked():
    s = summarise({"throughput": {"taskforce": [_round(300)]}, "latency": {}})
    assert all(t["value"] is None and not t["met"] for t in s["targets"])


def test_worker_processes_spread_round_robin_over_nodes():
    assert spread(1, ["w1", "w2"]) == {"w1": 1}
    assert spread(2, ["w1", "w2"]) == {"w1": 1, "w2": 1}
    assert spread(3, ["w1", "w2"]) == {"w1": 2, "w2": 1}


def test_profile_summary_counts_frames_once_per_stack():
    collapsed = "\n".join([
        "main (service.py:10);_consume_loop (leader.py:120);_commit_batch (leader.py:180);apply (raft.py:40) 30",
        "main (service.py:10);_consume_loop (leader.py:120);_pump (leader.py:230);dumps (connection.py:80) 20",
        "_run (syncobj.py:1);_onTick (syncobj.py:2) 50",
        "garbage",
    ])
    s = profile_summary(collapsed, seconds=2.0, rate=100)
    assert s["samples"] == 100 and s["busy_pct_of_one_core"] == 50.0
    inc = dict(s["top_inclusive"])
    assert inc["_consume_loop (leader.py)"] == 50.0 and inc["apply (raft.py)"] == 30.0
    assert dict(s["top_self"])["_onTick (syncobj.py)"] == 50.0


class FakeSystem:
    """Completes every job 10 ms after submission, on a timer thread."""
    name, clients, batch = "fake", 2, 5

    def __init__(self):
        import threading
        self.done, self.lock, self.n = {}, threading.Lock(), 0

    def _complete(self, jid, t):
        import threading
        def finish():
            with self.lock:
                self.done[jid] = (t + 0.005, t + 0.010)
        threading.Timer(0.01, finish).start()

    def submit_batch(self, client, n):
        return [self.submit_one(client) for _ in range(n)]

    def submit_one(self, client):
        import time
        with self.lock:
            self.n += 1
            jid = f"j{self.n}"
        t = time.time()
        self._complete(jid, t)
        return jid, t

    def completed(self):
        return len(self.done)


def test_saturation_keeps_the_window_and_every_job_completes():
    from bench.driver import saturate
    s = FakeSystem()
    edges = []
    load = saturate(s, warmup=0.2, duration=0.4, window=20, at_window=edges.append, drain_s=5)
    assert edges == ["from", "to"] and load.t_start < load.t_from < load.t_to
    assert load.drained and load.errors == 0
    assert set(load.submitted) == set(s.done)


def test_paced_load_submits_its_number_of_jobs():
    from bench.driver import paced
    s = FakeSystem()
    load = paced(s, rate=50, duration=0.4, threads=4, drain_s=5)
    assert len(load.submitted) == 20 and load.drained
