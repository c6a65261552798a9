"""The Java worker beside a Python one, on a one-host cluster of its own: routing by
capability, shared types on both languages, one contract through real processes, the lanes of
the Java-only queue, a hung handler, and kill -9 mid-job.

The module starts and stops its own cluster (1 Python + 1 Java worker, 4 slots each), so it
never runs beside the session-wide `cluster` of the other files. It skips when the jar
(`make java-build`; `TASKFORCE_JAVA_JAR` names another) or `java` is missing.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pika
import pytest
from jsonschema import Draft202012Validator

from dev.cluster import DevCluster

from .conftest import executions, get, have_rabbitmq, submit, wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
JAR = Path(os.environ.get("TASKFORCE_JAVA_JAR") or REPO / "build" / "taskforce-worker.jar")
SCHEMAS = REPO / "app" / "schemas"
SLOTS, PREFETCH = 4, 2   # DevCluster's worker config: slots = worker_slots, prefetch = 2


class EventTap:
    """Every raw message on tf.worker-events (job events and heartbeats), as the workers sent it."""

    def __init__(self, c: DevCluster) -> None:
        self.messages: list[tuple[str, dict]] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._params = pika.ConnectionParameters(
            "127.0.0.1", c.amqp_port, "taskforce", pika.PlainCredentials("admin", c.rabbit.passwords["admin"]))
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        assert self._ready.wait(15), "could not bind a queue to tf.worker-events"

    def _run(self) -> None:
        conn = pika.BlockingConnection(self._params)
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
        ch.queue_bind(q, "tf.worker-events", routing_key="#")
        self._ready.set()
        for m, _, body in ch.consume(q, auto_ack=True, inactivity_timeout=0.2):
            if self._stop.is_set():
                break
            if m is not None:
                self.messages.append((m.routing_key, json.loads(body)))
        conn.close()

    def events_for(self, jid: str) -> list[dict]:
        return [e for rk, e in list(self.messages) if rk.startswith("job.") and e.get("job_id") == jid]

    def heartbeats(self, lang: str) -> list[dict]:
        return [e for rk, e in list(self.messages) if rk == "heartbeat" and e.get("lang") == lang]

    def stop(self) -> None:
        self._stop.set()
        self._t.join(5)


@pytest.fixture(scope="module")
def polyglot(tmp_path_factory):
    if not have_rabbitmq():
        pytest.skip("needs root and the rabbitmq-server package (make deps installs it)")
    if not JAR.exists() or not shutil.which("java"):
        pytest.skip("needs build/taskforce-worker.jar (make java-build) and a java on PATH")
    base = Path(os.environ.get("TASKFORCE_JAVA_IT_DIR") or tmp_path_factory.mktemp("tf-java"))
    c = DevCluster(base / "cluster", gateways=1, workers=1, worker_slots=SLOTS, java_workers=1, java_jar=str(JAR))
    try:
        c.up()
        yield c
    finally:
        c.down()


@pytest.fixture(scope="module")
def tap(polyglot):
    t = EventTap(polyglot)
    yield t
    t.stop()


def submit_all(c: DevCluster, bodies: list[dict]) -> list[str]:
    with c.client() as cl:
        r = cl.post("/v1/jobs/batch", json={"jobs": bodies})
        assert r.status_code == 200, r.text
        assert all(x["status"] == 202 for x in r.json()["results"]), r.text
        return [x["id"] for x in r.json()["results"]]


def langs(rec: dict) -> list[str]:
    return [a["lang"] for a in rec["attempts"]]


def test_a_language_only_type_finds_its_language_without_a_queue(polyglot):
    # Ten of each, one attempt each: were they left on `default`, which both languages consume,
    # about half would reach the other language and fail UnknownJobType.
    jvm = submit_all(polyglot, [{"type": "jvm_info", "max_attempts": 1}] * 10)
    py = submit_all(polyglot, [{"type": "py_info", "max_attempts": 1}] * 10)
    done = polyglot.wait_terminal(jvm + py, 60)
    assert len(done) == 20
    for jid in jvm:
        rec = done[jid]
        assert (rec["status"], rec["queue"], langs(rec)) == ("succeeded", "java", ["java"]), rec
        assert rec["result"]["lang"] == "java" and rec["result"]["java_version"]
    for jid in py:
        rec = done[jid]
        assert (rec["status"], rec["queue"], langs(rec)) == ("succeeded", "python", ["python"]), rec
        assert rec["result"]["lang"] == "python"


def test_a_language_only_type_runs_on_its_language_queue(polyglot):
    jvm = submit(polyglot, {"type": "jvm_info", "queue": "java"})
    py = submit(polyglot, {"type": "py_info", "queue": "python"})
    done = polyglot.wait_terminal([jvm, py], 60)
    assert done[jvm]["status"] == "succeeded" and langs(done[jvm]) == ["java"], done[jvm]
    assert done[jvm]["result"]["lang"] == "java"
    assert done[py]["status"] == "succeeded" and langs(done[py]) == ["python"], done[py]
    assert done[py]["result"]["lang"] == "python"


def test_shared_types_spread_across_both_languages(polyglot):
    ids = submit_all(polyglot, [{"type": "noop" if i % 2 else "echo", "payload": {"i": i}} for i in range(60)])
    done = polyglot.wait_terminal(ids, 120)
    assert {r["status"] for r in done.values()} == {"succeeded"} and len(done) == 60
    by_lang = {"python": 0, "java": 0}
    for r in done.values():
        by_lang[langs(r)[-1]] += 1
    print(f"\n60 shared jobs ran on: {by_lang}")
    assert by_lang["python"] >= 5 and by_lang["java"] >= 5, by_lang
    for i, jid in enumerate(ids):
        assert done[jid]["result"] == ({} if i % 2 else {"i": i})


def _contract_vectors() -> list[tuple[str, dict]]:
    """The shared contract vectors whose outcome does not depend on the attempt number."""
    out = []
    for f in sorted((SCHEMAS / "vectors" / "contract").glob("*.json")):
        v = json.loads(f.read_text())
        if v["type"] in ("noop", "echo", "cpu"):
            out.append((f.stem, v))
    return out


def test_both_languages_give_the_contract_results_and_speak_the_schemas(polyglot, tap):
    vectors = _contract_vectors()
    assert len(vectors) >= 10
    bodies = []
    for _, v in vectors:
        for queue in ("python", "java"):
            bodies.append({"type": v["type"], "payload": v["payload"], "queue": queue, "max_attempts": 1,
                           "timeout_s": v.get("timeout_s", 30.0)})
    ids = submit_all(polyglot, bodies)
    done = polyglot.wait_terminal(ids, 120)
    assert len(done) == len(ids)
    worker_event = Draft202012Validator(json.loads((SCHEMAS / "worker-event.schema.json").read_text()))
    heartbeat = Draft202012Validator(json.loads((SCHEMAS / "heartbeat.schema.json").read_text()))
    for k, (name, v) in enumerate(vectors):
        py, jv = done[ids[2 * k]], done[ids[2 * k + 1]]
        assert langs(py) == ["python"] and langs(jv) == ["java"], name
        expect = v["expect"]
        if expect["outcome"] == "succeeded":
            assert py["status"] == jv["status"] == "succeeded", (name, py["error"], jv["error"])
            assert py["result"] == jv["result"] == expect["result"], name
        else:
            assert py["status"] == jv["status"] == "dead", name
            want = expect["error_type"]
            assert py["error"]["type"] == (want if isinstance(want, str) else want["python"]), name
            assert jv["error"]["type"] == (want if isinstance(want, str) else want["java"]), name
    # The raw events, as each worker put them on the wire: valid, and started before the outcome.
    wait_for(lambda: all(len(tap.events_for(i)) >= 2 for i in ids), timeout=20, what="the events on the tap")
    for jid in ids:
        evs = tap.events_for(jid)
        for e in evs:
            errors = [err.message for err in worker_event.iter_errors(e)]
            assert not errors, (e, errors)
        kinds = [e["kind"] for e in evs if e["kind"] != "progress"]
        assert kinds == ["started", "succeeded"] or kinds == ["started", "failed"], (jid, kinds)
    for lang in ("python", "java"):
        hbs = wait_for(lambda: tap.heartbeats(lang), timeout=10, what=f"a {lang} heartbeat")
        for hb in hbs:
            errors = [err.message for err in heartbeat.iter_errors(hb)]
            assert not errors, (hb, errors)


def test_high_jobs_overtake_a_low_backlog_on_the_java_queue(polyglot):
    """docs/decisions.md, "Priority lanes", on a queue only the Java worker consumes: its lane
    consumers have a window of slots + prefetch, and once high jobs are buffered no low job
    starts before them. With a window of `prefetch` alone the high jobs trickled in two at a
    time while the other slots kept starting low ones."""
    consumers = polyglot.rabbit.ctl("list_consumers", "-p", "taskforce", "queue_name", "prefetch_count",
                                    "--formatter", "json").stdout
    windows = {c["queue_name"]: c["prefetch_count"] for c in json.loads(consumers)
               if c["queue_name"].startswith("tf.jobs.java.")}
    assert windows == {f"tf.jobs.java.{lane}": SLOTS + PREFETCH for lane in ("high", "normal", "low")}, windows

    low = submit_all(polyglot, [{"type": "sleep", "payload": {"seconds": 0.2}, "priority": 0, "queue": "java"}] * 150)
    with polyglot.client() as cl:
        wait_for(lambda: cl.get("/v1/jobs", params={"status": "pending", "limit": 1}).json()["jobs"] == [] and
                 any(get(polyglot, i)["status"] in ("running", "succeeded") for i in low[:10]),
                 timeout=60, what="the backlog dispatched and moving")
    t_high = time.time()
    high = submit_all(polyglot, [{"type": "sleep", "payload": {"seconds": 0.3}, "priority": 9, "queue": "java"}] * 10)
    done_high = polyglot.wait_terminal(high, 60)
    assert {r["status"] for r in done_high.values()} == {"succeeded"}
    starts = sorted(r["attempts"][0]["started_at"] for r in done_high.values())
    done_low = polyglot.wait_terminal(low, 120)
    assert len(done_low) == len(low)
    # Between the first and the last high start every slot should go to a high job; the dispatch
    # latency before the first one is the orchestrator's, not the worker's, so it is not counted.
    between = sum(1 for r in done_low.values() if starts[0] < r["attempts"][0]["started_at"] < starts[-1])
    print(f"\njava lanes: first high started {starts[0] - t_high:.2f}s after submit, last {starts[-1] - t_high:.2f}s;"
          f" {between} low jobs started in between (bound {SLOTS + PREFETCH})")
    assert between <= SLOTS + PREFETCH


def test_a_hanging_java_handler_times_out_and_the_worker_keeps_serving(polyglot):
    java = polyglot.procs["java1"]
    pid = java.popen.pid
    jid = submit(polyglot, {"type": "hang", "timeout_s": 2, "max_attempts": 1, "queue": "java"})
    rec = polyglot.wait_terminal([jid], 30)[jid]
    assert rec["status"] == "dead" and langs(rec) == ["java"]
    assert rec["error"]["type"] == "Timeout", rec["error"]
    finished = rec["attempts"][0]["finished_at"] - rec["attempts"][0]["started_at"]
    assert 2 <= finished < 6, f"timed out after {finished:.1f}s, timeout_s was 2"
    ids = submit_all(polyglot, [{"type": "echo", "payload": i, "queue": "java"} for i in range(2 * SLOTS)])
    done = polyglot.wait_terminal(ids, 30)
    assert [done[i]["result"] for i in ids] == list(range(2 * SLOTS))
    assert {langs(r)[0] for r in done.values()} == {"java"}
    assert java.alive and java.popen.pid == pid


def test_kill_9_of_the_java_worker_mid_job_completes_on_python(polyglot):
    java = polyglot.procs["java1"]
    ids = submit_all(polyglot, [{"type": "sleep", "payload": {"seconds": 3}, "timeout_s": 30}] * 6)

    def one_running_on_java():
        for i in ids:
            r = get(polyglot, i)
            if r["status"] == "running" and r["attempts"][-1]["lang"] == "java":
                return i
        return None

    victim_job = wait_for(one_running_on_java, timeout=30, what="a sleep job running on the Java worker")
    java.signal(signal.SIGKILL)
    java.popen.wait(10)
    try:
        done = polyglot.wait_terminal(ids, 60)
        assert {r["status"] for r in done.values()} == {"succeeded"}, done
        rec = done[victim_job]
        assert langs(rec)[0] == "java" and langs(rec)[-1] == "python", rec["attempts"]
        assert rec["attempts"][0]["outcome"] is None, "the killed attempt never reported an outcome"
        runs = executions(polyglot, victim_job)
        assert len(runs) >= 2 and runs[0]["worker_id"] != runs[-1]["worker_id"], runs
        print(f"\nattempts of the job running on the killed Java worker: "
              f"{[(a['worker_id'], a['outcome']) for a in rec['attempts']]}")
    finally:
        java.start()
        polyglot.wait_workers(polyglot.n_workers + polyglot.n_java)
    # the restarted worker serves its own queue again
    jid = submit(polyglot, {"type": "jvm_info", "queue": "java"})
    assert polyglot.wait_terminal([jid], 60)[jid]["status"] == "succeeded"
