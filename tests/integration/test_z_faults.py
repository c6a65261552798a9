"""Faults on one host: bad input, a poison message, leader kill, broker outage, full restart.
Named to run after test_one_host.py; each test leaves the cluster whole again."""
import json
import signal
import threading
import time

import httpx
import pika
import pytest

from .conftest import get, submit, wait_for

pytestmark = pytest.mark.integration


def test_bad_input_gets_clear_answers(cluster):
    url = cluster.gw_url(0)
    assert httpx.post(url + "/v1/jobs", json={"type": "noop"}).status_code == 401
    assert httpx.post(url + "/v1/jobs", json={"type": "noop"}, headers={"Authorization": "Bearer nope"}).status_code == 401
    with cluster.client(0, "reader") as cl:
        r = cl.post("/v1/jobs", json={"type": "noop"})
        assert r.status_code == 403 and "submit" in r.json()["detail"]
    with cluster.client() as cl:
        r = cl.post("/v1/jobs", json={"type": "noop", "priority": 12, "max_attempts": 0})
        assert r.status_code == 422
        fields = {e["loc"][-1] for e in r.json()["detail"]}
        assert fields == {"priority", "max_attempts"}
        r = cl.post("/v1/jobs", json={"type": "echo", "payload": "x" * (1 << 20)})
        assert r.status_code == 413
        r = cl.post("/v1/jobs", content=b"{" + b" " * (3 << 20) + b"}", headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        assert cl.get("/v1/jobs/0123456789abcdef").status_code == 404
        assert cl.post("/v1/jobs/0123456789abcdef/cancel").status_code == 404
    assert httpx.get(url + "/healthz").status_code == 200
    assert httpx.get(url + "/readyz").json()["ready"] is True
    spec = httpx.get(url + "/openapi.json").json()
    assert {"/v1/jobs", "/v1/jobs/batch", "/v1/jobs/{jid}", "/v1/events", "/v1/cluster"} <= set(spec["paths"])
    assert httpx.get(url + "/metrics").status_code == 401
    with cluster.client(0, "reader") as cl:
        m = cl.get("/metrics").text
        assert "taskforce_submits_total" in m and "taskforce_http_requests_total" in m
        cluster_view = cl.get("/v1/cluster").json()
        assert cluster_view["raft"]["leader"] and len(cluster_view["raft"]["members"]) == 3
        assert all(n["reachable"] for n in cluster_view["rabbitmq"]["nodes"])
        assert "tf.jobs.default.high" in cluster_view["rabbitmq"]["queues"]


def test_malformed_job_message_is_dead_lettered_and_the_worker_lives(cluster):
    creds = pika.PlainCredentials("admin", cluster.rabbit.passwords["admin"])
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", cluster.amqp_port, "taskforce", creds))
    ch = conn.channel()
    ch.confirm_delivery()
    marker = f"garbage-{time.time()}"
    ch.basic_publish("tf.jobs", "tf.jobs.python.normal", marker.encode())
    reason = None
    end = time.time() + 20
    while reason is None and time.time() < end:
        m, props, body = ch.basic_get("tf.dead", auto_ack=False)
        if m is None:
            time.sleep(0.3)
            continue
        if body == marker.encode():
            reason = props.headers.get("x-taskforce-reason")
            ch.basic_ack(m.delivery_tag)
    conn.close()
    assert reason and "JSON" in reason
    jid = submit(cluster, {"type": "echo", "payload": 1, "queue": "python"})
    assert cluster.wait_terminal([jid], 30)[jid]["status"] == "succeeded"


def _steady_load(cluster, stop: threading.Event, ids: list, errors: list) -> None:
    i = 0
    with cluster.client(1) as cl:
        while not stop.is_set():
            try:
                r = cl.post("/v1/jobs", json={"type": "noop", "payload": {"i": i}})
                if r.status_code == 202:
                    ids.append((time.time(), r.json()["id"]))
                else:
                    errors.append(r.status_code)
            except httpx.HTTPError as e:
                errors.append(repr(e))
            i += 1
            time.sleep(0.02)


def test_leader_kill_loses_nothing(cluster):
    stop, ids, errors = threading.Event(), [], []
    t = threading.Thread(target=_steady_load, args=(cluster, stop, ids, errors))
    t.start()
    time.sleep(3)
    old = cluster.wait_leader()
    t_kill = time.time()
    cluster.procs[f"orch{old + 1}"].kill()
    new = cluster.wait_leader(30)
    t_leader = time.time()
    # scheduling resumes when a job submitted after the kill starts
    after = wait_for(lambda: [j for ts, j in list(ids) if ts > t_leader][:1], what="a post-failover submit")
    started = wait_for(lambda: (r := get(cluster, after[0]))["attempts"] and r["attempts"][0]["started_at"],
                       timeout=60, what="a post-failover job to start")
    time.sleep(2)
    stop.set()
    t.join()
    cluster.procs[f"orch{old + 1}"].start()
    done = cluster.wait_terminal([j for _, j in ids], timeout=120)
    lost = len(ids) - len(done)
    print(f"\nleader kill: {len(ids)} accepted, {lost} lost, new leader after {t_leader - t_kill:.2f}s, "
          f"scheduling paused {started - t_kill:.2f}s; submit errors during failover: {len(errors)}")
    assert new != old and lost == 0
    assert {r["status"] for r in done.values()} == {"succeeded"}
    wait_for(lambda: cluster.orch_status(old) and cluster.orch_status(old)["state"] == "follower", what="rejoin")


def test_stopped_broker_gives_503_never_202_then_recovers(cluster):
    cluster.rabbit.stop_app()
    try:
        with cluster.client() as cl:
            codes = set()
            for _ in range(5):
                r = cl.post("/v1/jobs", json={"type": "noop"})
                codes.add(r.status_code)
                if r.status_code == 503:
                    assert r.headers.get("Retry-After")
            assert codes == {503}, codes
    finally:
        cluster.rabbit.start_app()
    cluster.wait_ready(60)
    jid = wait_for(lambda: _try_submit(cluster), timeout=60, what="submits accepted again")
    assert cluster.wait_terminal([jid], 90)[jid]["status"] == "succeeded"


def _try_submit(cluster):
    with cluster.client() as cl:
        r = cl.post("/v1/jobs", json={"type": "noop"})
        return r.json()["id"] if r.status_code == 202 else None


def test_full_orchestrator_restart_restores_state_from_disk(cluster):
    before = submit(cluster, {"type": "echo", "payload": "before"})
    cluster.wait_terminal([before], 30)
    ids = [submit(cluster, {"type": "sleep", "payload": {"seconds": 0.5}}) for _ in range(40)]
    for i in range(cluster.n_orch):
        cluster.procs[f"orch{i + 1}"].kill()
    t_kill = time.time()
    more = [submit(cluster, {"type": "noop"}) for _ in range(20)]   # accepted into RabbitMQ meanwhile
    for i in range(cluster.n_orch):
        cluster.procs[f"orch{i + 1}"].start()
    cluster.wait_leader(60)
    print(f"\nfull restart: leader back {time.time() - t_kill:.1f}s after the kill")
    done = cluster.wait_terminal(ids + more + [before], 120)
    assert len(done) == len(ids) + len(more) + 1, "every accepted job must finish"
    assert done[before]["result"] == "before", "state from before the restart came back from disk"
