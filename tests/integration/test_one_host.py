"""The app end to end with real processes on one host. Tests run in file order against one
cluster; the ones that break things (leader kill, broker stop, full restart) restore it."""
import json
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pika
import pytest

from .conftest import SSE, executions, get, submit, wait_for

pytestmark = pytest.mark.integration


def test_500_mixed_jobs_through_both_gateways_and_sse_sees_every_transition(cluster):
    sse = SSE(cluster.gw_url(1) + "/v1/events", cluster.tokens["reader"])
    bodies = [{"type": "noop" if i % 3 else "echo", "payload": {"i": i}, "priority": i % 10} for i in range(500)]
    clients = [cluster.client(0), cluster.client(1)]   # shared: a client per request costs a TLS context

    def post(ib):
        r = clients[ib[0] % 2].post("/v1/jobs", json=ib[1])
        assert r.status_code == 202, r.text
        return r.json()["id"]

    t0 = time.time()
    with ThreadPoolExecutor(8) as ex:
        ids = list(ex.map(post, enumerate(bodies)))
    t_submit = time.time() - t0
    for cl in clients:
        cl.close()
    assert len(set(ids)) == 500
    done = cluster.wait_terminal(ids, timeout=180)
    elapsed = time.time() - t0
    print(f"\n500 jobs submitted in {t_submit:.1f}s, all finished in {elapsed:.1f}s")
    assert len(done) == 500, f"{500 - len(done)} jobs not terminal"
    assert {r["status"] for r in done.values()} == {"succeeded"}
    assert done[ids[1]]["result"] == {"i": 1} or done[ids[0]]["result"] == {"i": 0}
    watched = ids[7]
    wait_for(lambda: any(d.get("job_id") == watched and d["phase"] == "succeeded" for _, _, d in sse.frames),
             what="the watched job's final event on SSE")
    sse.stop()
    phases = [d["phase"] for _, ev, d in sse.frames if d.get("job_id") == watched]
    assert phases == ["pending", "queued", "running", "succeeded"], phases
    seqs = [int(i) for i, _, _ in sse.frames]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)), "SSE ids must strictly increase"


def test_per_job_stream_resumes_and_ends_at_terminal(cluster):
    jid = submit(cluster, {"type": "sleep", "payload": {"seconds": 1.5}})
    sse = SSE(cluster.gw_url(0) + f"/v1/jobs/{jid}/events", cluster.tokens["reader"])
    wait_for(lambda: sse.frames and sse.frames[-1][2]["phase"] == "succeeded", what="stream to reach succeeded")
    assert sse.frames[0][1] == "snapshot"
    assert sse.frames[-1][2]["record"]["result"] == {"slept": 1.5}
    first_live = [int(i) for i, ev, _ in sse.frames if ev == "job"][0]
    resumed = SSE(cluster.gw_url(0) + f"/v1/jobs/{jid}/events", cluster.tokens["reader"],
                  {"Last-Event-ID": str(first_live)})
    wait_for(lambda: resumed.frames and resumed.frames[-1][2]["phase"] == "succeeded", what="resumed stream")
    assert all(int(i) > first_live for i, _, _ in resumed.frames), "resume replays only later events"


def test_worker_kill_mid_job_completes_elsewhere(cluster):
    # queue python: the Java worker's own kill test is in test_java.py
    jid = submit(cluster, {"type": "sleep", "payload": {"seconds": 4}, "timeout_s": 30, "queue": "python"})
    rec = wait_for(lambda: (r := get(cluster, jid))["status"] == "running" and r, what="job running")
    node = rec["attempts"][0]["node"]          # w1 or w2
    victim = cluster.procs[f"worker{node[1:]}"]
    victim.signal(signal.SIGKILL)               # the whole process group, slots included
    try:
        done = cluster.wait_terminal([jid], timeout=60)[jid]
        assert done["status"] == "succeeded"
        workers = [a["worker_id"] for a in done["attempts"]]
        assert len(workers) >= 2 and workers[0] != workers[-1], done["attempts"]
        print(f"\nattempts recorded: {[(a['worker_id'], a['outcome']) for a in done['attempts']]}")
    finally:
        victim.start()
        cluster.wait_workers(cluster.n_workers + cluster.n_java)


def test_sigterm_drains_a_worker_gracefully(cluster):
    victim = cluster.procs["worker1"]
    other = cluster.procs["worker2"]
    other.signal(signal.SIGSTOP)   # make sure worker1 takes the jobs
    try:
        # RabbitMQ still hands some of these to the stopped worker2; they wait in its socket
        ids = [submit(cluster, {"type": "sleep", "payload": {"seconds": 2}, "queue": "python"}) for _ in range(8)]
        wait_for(lambda: sum(get(cluster, i)["status"] == "running" for i in ids) >= 2, what="worker1 busy")
        victim.popen.send_signal(signal.SIGTERM)
        rc = victim.popen.wait(30)
    finally:
        other.signal(signal.SIGCONT)
    assert rc == 0
    done = cluster.wait_terminal(ids, 60)
    assert {r["status"] for r in done.values()} == {"succeeded"}
    # the running ones finished on worker1; what it held but had not started was handed back
    finished_by = {r["attempts"][-1]["node"] for r in done.values()}
    assert "w1" in finished_by
    assert all(len(r["attempts"]) == 1 for r in done.values()), "a drained job must not run twice"
    victim.start()
    cluster.wait_workers(cluster.n_workers + cluster.n_java)


def test_failing_handler_retries_with_backoff_goes_dead_and_retry_revives(cluster):
    jid = submit(cluster, {"type": "fail", "payload": {"fail_times": 99, "fail_generations": 1}, "max_attempts": 3,
                          "queue": "python"})
    rec = cluster.wait_terminal([jid], timeout=60)[jid]
    assert rec["status"] == "dead" and rec["attempt"] == 3
    assert rec["error"] == {"type": "PlannedFailure", "message": "planned failure"}
    starts = sorted(a["started_at"] for a in rec["attempts"])
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert len(starts) == 3 and gaps[1] > gaps[0] * 0.9, f"backoff should grow: {gaps}"
    # visible in tf.dead
    creds = pika.PlainCredentials("admin", cluster.rabbit.passwords["admin"])
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", cluster.amqp_port, "taskforce", creds))
    ch = conn.channel()
    found = None
    for _ in range(2000):
        m, props, body = ch.basic_get("tf.dead", auto_ack=False)
        if m is None:
            break
        if json.loads(body).get("id") == jid:
            found = props.headers
    conn.close()   # unacked messages go back
    assert found and "PlannedFailure" in found["x-taskforce-reason"]
    with cluster.client() as cl:
        assert cl.post(f"/v1/jobs/{jid}/retry").status_code == 202
    wait_for(lambda: get(cluster, jid)["status"] == "succeeded", what="revived job to succeed")
    assert get(cluster, jid)["generation"] == 1


def test_hanging_handler_times_out_and_the_worker_keeps_serving(cluster):
    pids = {n: p.popen.pid for n, p in cluster.procs.items() if n.startswith("worker")}
    jid = submit(cluster, {"type": "hang", "timeout_s": 2, "max_attempts": 1, "queue": "python"})
    rec = cluster.wait_terminal([jid], timeout=30)[jid]
    assert rec["status"] == "dead" and rec["error"]["type"] == "Timeout"
    ids = [submit(cluster, {"type": "echo", "payload": i, "queue": "python"}) for i in range(10)]
    assert {r["status"] for r in cluster.wait_terminal(ids, 30).values()} == {"succeeded"}
    assert all(cluster.procs[n].alive and cluster.procs[n].popen.pid == pid for n, pid in pids.items())


def test_cancel_queued_and_running_and_delay(cluster):
    # fill every python slot so that the target waits in its queue
    blockers = [submit(cluster, {"type": "sleep", "payload": {"seconds": 4}, "queue": "python"}) for _ in range(8)]
    wait_for(lambda: all(get(cluster, b)["status"] == "running" for b in blockers), what="every python slot busy")
    queued = submit(cluster, {"type": "echo", "payload": "never", "queue": "python", "priority": 0})
    with cluster.client() as cl:
        assert cl.post(f"/v1/jobs/{queued}/cancel").status_code == 202
    running = submit(cluster, {"type": "sleep", "payload": {"seconds": 30}, "timeout_s": 60, "queue": "python"})
    wait_for(lambda: get(cluster, running)["status"] == "running", what="long job running")
    t_cancel = time.time()
    with cluster.client() as cl:
        assert cl.post(f"/v1/jobs/{running}/cancel").status_code == 202
    delayed_at = time.time() + 4
    delayed = submit(cluster, {"type": "noop", "run_at": delayed_at})
    assert get(cluster, delayed)["status"] == "pending"
    done = cluster.wait_terminal(blockers + [queued, running, delayed], timeout=60)
    assert done[queued]["status"] == "cancelled"
    assert not any(a.get("started_at") for a in done[queued]["attempts"]), "a cancelled queued job must never start"
    assert executions(cluster, queued) == []
    assert done[running]["status"] == "cancelled"
    stopped = wait_for(lambda: [a for a in get(cluster, running)["attempts"] if a.get("finished_at")], what="handler stop")
    assert stopped[0]["error"]["type"] == "Cancelled" and stopped[0]["finished_at"] - t_cancel < 5
    assert done[delayed]["status"] == "succeeded"
    assert done[delayed]["attempts"][0]["started_at"] >= delayed_at


def test_idempotency_key_gives_one_job_that_runs_once(cluster):
    h = {"Idempotency-Key": f"order-{time.time()}"}
    a = submit(cluster, {"type": "noop"}, gw=0, headers=h)
    b = submit(cluster, {"type": "noop"}, gw=1, headers=h)
    assert a == b
    cluster.wait_terminal([a], 30)
    time.sleep(1)
    assert len(executions(cluster, a)) == 1


def test_priority_lanes_overtake_a_low_backlog(cluster):
    """The lane mechanism's bound, measured from when the high jobs reached their lane queue
    (their committed `queued` event): the control plane's own latency under load is printed
    beside it, not counted against the lanes."""
    sse = SSE(cluster.gw_url(0) + "/v1/events?status=queued", cluster.tokens["reader"])
    with cluster.client() as cl:
        # half-second jobs: long enough that scheduling noise on a loaded machine does not
        # count as backlog movement, short enough to drain 1,000 in under a minute
        low = cl.post("/v1/jobs/batch", json={"jobs": [{"type": "sleep", "payload": {"seconds": 0.5}, "priority": 0}] * 1000})
        assert low.status_code == 200
        low_ids = [r["id"] for r in low.json()["results"]]
        assert all(r["status"] == 202 for r in low.json()["results"])
        # the backlog is in its lane queue (nothing pending in the schedule) and moving
        wait_for(lambda: cl.get("/v1/jobs", params={"status": "pending", "limit": 1}).json()["jobs"] == [] and
                 any(get(cluster, i)["status"] in ("running", "succeeded") for i in low_ids[:20]),
                 timeout=60, what="backlog dispatched and moving")
        t_high = time.time()
        high = cl.post("/v1/jobs/batch", json={"jobs": [{"type": "noop", "priority": 9}] * 10})
        high_ids = [r["id"] for r in high.json()["results"]]
    done_high = cluster.wait_terminal(high_ids, 60)
    last_high_start = max(r["attempts"][0]["started_at"] for r in done_high.values())
    queued_at = wait_for(lambda: (ts := [d["ts"] for _, _, d in sse.frames if d["job_id"] in high_ids])
                         and len(ts) >= len(high_ids) and ts, what="queued events of the high jobs")
    sse.stop()
    t_lane = min(queued_at)
    done_low = cluster.wait_terminal(low_ids, 300)
    starts = [r["attempts"][0]["started_at"] for r in done_low.values()]
    moved = sum(1 for t in starts if t_lane <= t <= last_high_start)
    moved_since_submit = sum(1 for t in starts if t_high <= t <= last_high_start)
    # total prefetch of the low lane (the window beyond the slots) plus the slots, over all workers
    bound = (cluster.n_workers + cluster.n_java) * (2 + cluster.worker_slots)
    print(f"\nbacklog moved by {moved} between the high jobs reaching their lane and the last of them "
          f"starting (bound {bound}); {moved_since_submit} since their submit; dispatch took "
          f"{t_lane - t_high:.2f}s, the last high started {last_high_start - t_high:.2f}s after submit")
    assert moved <= bound


def test_cli_submit_wait_and_status(cluster):
    import os
    import subprocess
    import sys
    env = dict(os.environ, TASKFORCE_URL=cluster.gw_url(0), TASKFORCE_TOKEN=cluster.tokens["client"])
    cli = [sys.executable, "-m", "taskforce.cli"]
    r = subprocess.run(cli + ["submit", "sleep", "--payload", '{"seconds": 1.5}', "--wait"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    jid = lines[0]
    assert any("running" in ln for ln in lines) and "succeeded" in lines[-1] and jid in lines[-1]
    r = subprocess.run(cli + ["status"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "raft leader:" in r.stdout and "workers:" in r.stdout, r.stdout + r.stderr
    r = subprocess.run(cli + ["submit", "noop", "--priority", "12"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "priority" in r.stderr
