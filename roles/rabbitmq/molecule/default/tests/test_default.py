"""The rabbitmq role on three fresh nodes: one cluster, no guest, private cookie."""

import json
import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("rabbitmq")


def test_rabbitmq_is_running_and_enabled(host):
    service = host.service("rabbitmq-server")
    assert service.is_running and service.is_enabled


def test_every_node_sees_all_three_running(host):
    status = json.loads(host.check_output("rabbitmqctl cluster_status --formatter json"))
    assert sorted(status["running_nodes"]) == ["rabbit@mol-rmq1", "rabbit@mol-rmq2", "rabbit@mol-rmq3"]


def test_guest_is_gone_and_components_exist(host):
    users = {u["user"] for u in json.loads(host.check_output("rabbitmqctl list_users --formatter json"))}
    assert users == {"admin", "gateway", "orchestrator", "worker"}


def test_cookie_is_private(host):
    cookie = host.file("/var/lib/rabbitmq/.erlang.cookie")
    assert cookie.user == "rabbitmq" and cookie.mode == 0o400


def test_config_pauses_the_minority(host):
    assert host.file("/etc/rabbitmq/rabbitmq.conf").contains("cluster_partition_handling = pause_minority")
