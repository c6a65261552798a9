"""The RabbitMQ cluster the rabbitmq role builds, checked on every broker node
and over AMQP from the lab host with each component's credentials."""

import json

import pytest

from tests.cluster.cluster_lab import address, host, hosts_in

COMPONENT_USERS = ("admin", "gateway", "orchestrator", "worker")


def brokers() -> list[str]:
    try:
        return hosts_in("rabbitmq")
    except Exception:
        return ["absent"]


def cluster_status(name: str) -> dict:
    out = host(name).check_output("rabbitmqctl cluster_status --formatter json")
    return json.loads(out)


@pytest.mark.parametrize("name", brokers())
def test_service_is_running_and_enabled(name):
    service = host(name).service("rabbitmq-server")
    assert service.is_running and service.is_enabled


@pytest.mark.parametrize("name", brokers())
def test_every_node_sees_the_whole_cluster_running(name):
    status = cluster_status(name)
    expected = sorted(f"rabbit@{broker}" for broker in brokers())
    assert sorted(status["running_nodes"]) == expected
    assert not status.get("partitions")


def test_cookie_is_shared_private_and_owned_by_rabbitmq():
    digests = set()
    for name in brokers():
        cookie = host(name).file("/var/lib/rabbitmq/.erlang.cookie")
        assert cookie.user == "rabbitmq" and cookie.mode == 0o400
        digests.add(host(name).check_output("sha256sum /var/lib/rabbitmq/.erlang.cookie").split()[0])
    assert len(digests) == 1


def test_partition_handling_and_heartbeat_are_configured():
    conf = host(brokers()[0]).file("/etc/rabbitmq/rabbitmq.conf")
    assert conf.contains("^cluster_partition_handling = pause_minority$")
    assert conf.contains("^heartbeat = 10$")


def test_users_are_the_components_and_guest_is_gone():
    users = json.loads(host(brokers()[0]).check_output("rabbitmqctl list_users --formatter json"))
    names = {user["user"] for user in users}
    assert names == set(COMPONENT_USERS)


def test_vhost_exists():
    vhosts = json.loads(host(brokers()[0]).check_output("rabbitmqctl list_vhosts --formatter json"))
    assert "taskforce" in {v["name"] for v in vhosts}


# ------------------------------------------------------------------ over AMQP

pika = pytest.importorskip("pika")


def connect(user: str, password: str, broker: str | None = None):
    broker = broker or brokers()[0]
    params = pika.ConnectionParameters(host=address(broker), port=5672, virtual_host="taskforce",
                                       credentials=pika.PlainCredentials(user, password),
                                       connection_attempts=1, socket_timeout=5, blocked_connection_timeout=5)
    return pika.BlockingConnection(params)


def test_guest_cannot_log_in():
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        connect("guest", "guest")


@pytest.mark.parametrize("user", COMPONENT_USERS)
def test_each_component_logs_in_on_every_broker(secrets, user):
    for broker in brokers():
        connect(user, secrets["amqp_passwords"][user], broker).close()


@pytest.mark.parametrize("user", ("gateway", "orchestrator", "worker"))
def test_each_component_may_declare_the_shared_topology(secrets, user):
    topology = pytest.importorskip("taskforce.amqp.topology")
    conn = connect(user, secrets["amqp_passwords"][user])
    try:
        channel = conn.channel()
        topology.declare_core(channel)
        if user in ("worker", "orchestrator"):
            topology.declare_lanes(channel, "default")
    finally:
        conn.close()


def test_a_worker_cannot_publish_jobs_or_commands(secrets):
    topology = pytest.importorskip("taskforce.amqp.topology")
    for exchange, key in ((topology.JOBS_X, "tf.jobs.default.high"), ("", topology.COMMANDS)):
        conn = connect("worker", secrets["amqp_passwords"]["worker"])
        channel = conn.channel()
        channel.confirm_delivery()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            channel.basic_publish(exchange, key, b"{}")
        assert refused.value.reply_code == 403
        conn.close()


def test_a_gateway_cannot_forge_worker_events(secrets):
    topology = pytest.importorskip("taskforce.amqp.topology")
    conn = connect("gateway", secrets["amqp_passwords"]["gateway"])
    channel = conn.channel()
    channel.confirm_delivery()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        channel.basic_publish(topology.WORKER_EVENTS_X, "job.succeeded", b"{}")
    assert refused.value.reply_code == 403
    conn.close()
