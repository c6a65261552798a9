"""Routing by capability and the warning for a job no live worker will take (gateway/routes/jobs.py)."""
from types import SimpleNamespace

from taskforce.gateway.routes.jobs import route, unserved
from taskforce.model import JobSpec


def request_with(*workers):
    """A request whose feed knows these heartbeats: (queues, types, alive)."""
    hbs = [{"queues": q, "types": t, "alive": alive} for q, t, alive in workers]
    feed = SimpleNamespace(worker_list=lambda now: hbs)
    return SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(feed=feed)))


PY = (["default", "python"], ["noop", "py_info"], True)
JAVA = (["default", "java"], ["noop", "jvm_info"], True)


def test_a_type_every_default_consumer_serves_stays_on_default():
    assert route(request_with(PY, JAVA), JobSpec(type="noop")).queue == "default"


def test_a_language_only_type_goes_to_that_languages_queue():
    assert route(request_with(PY, JAVA), JobSpec(type="jvm_info")).queue == "java"
    assert route(request_with(PY, JAVA), JobSpec(type="py_info")).queue == "python"


def test_a_named_queue_is_kept():
    assert route(request_with(PY, JAVA), JobSpec(type="jvm_info", queue="default")).queue == "default"


def test_dead_workers_do_not_count():
    dead_java = (["default", "java"], ["noop", "jvm_info"], False)
    assert route(request_with(PY, dead_java), JobSpec(type="py_info")).queue == "default"


def test_no_warning_when_a_live_worker_takes_the_job():
    req = request_with(PY, JAVA)
    assert unserved(req, route(req, JobSpec(type="jvm_info"))) is None


def test_warning_names_the_queue_and_type_nobody_serves():
    req = request_with(PY)
    warning = unserved(req, route(req, JobSpec(type="jvm_info")))
    assert warning.startswith("199 ") and "queue default" in warning and "type jvm_info" in warning
    assert "queue java" in unserved(req, JobSpec(type="noop", queue="java"))


def test_no_warning_before_any_worker_has_been_seen():
    # A gateway that just started knows no heartbeats yet; it cannot tell.
    assert unserved(request_with(), JobSpec(type="anything")) is None


def test_a_fresh_gateway_waits_for_the_first_heartbeat_before_routing():
    import asyncio

    from taskforce.gateway.routes import jobs

    calls = []

    def known(warmup):
        calls.append(warmup)
        return len(calls) > 3      # the first heartbeat arrives while the submit waits

    req = request_with(PY, JAVA)
    req.app.state.feed.workers_known = known
    asyncio.run(jobs.await_workers_known(req, [JobSpec(type="jvm_info")]))
    assert len(calls) == 4
    assert route(req, JobSpec(type="jvm_info")).queue == "java"


def test_a_job_that_names_its_queue_never_waits():
    import asyncio

    from taskforce.gateway.routes import jobs

    req = request_with()
    req.app.state.feed.workers_known = lambda warmup: (_ for _ in ()).throw(AssertionError("asked"))
    asyncio.run(jobs.await_workers_known(req, [JobSpec(type="noop", queue="default")]))


def test_a_type_whose_workers_all_went_quiet_waits_on_their_queue_not_on_default():
    # Seen in a partition: the Java workers' heartbeats stopped reaching this gateway.
    quiet_java = (["default", "java"], ["noop", "jvm_info"], False)
    assert route(request_with(PY, quiet_java), JobSpec(type="jvm_info")).queue == "java"


def test_with_every_worker_quiet_the_workers_last_seen_route():
    # Seen in leader-isolate on the lab: a gateway cut off from every heartbeat sent a jvm_info
    # job to default, where a Python worker failed it on every attempt.
    quiet_py = (["default", "python"], ["noop", "py_info"], False)
    quiet_java = (["default", "java"], ["noop", "jvm_info"], False)
    req = request_with(quiet_py, quiet_java)
    assert route(req, JobSpec(type="jvm_info")).queue == "java"
    assert route(req, JobSpec(type="py_info")).queue == "python"
    assert route(req, JobSpec(type="noop")).queue == "default"


def test_a_type_nobody_ever_served_stays_on_default():
    assert route(request_with(PY, JAVA), JobSpec(type="unknown")).queue == "default"
