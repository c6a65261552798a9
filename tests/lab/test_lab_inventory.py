"""The generated inventory is what Ansible reads: check it as YAML."""

from pathlib import Path

import pytest

from lab import inventory
from lab.topology import parse_nodes

yaml = pytest.importorskip("yaml")

KEY = Path("/var/lib/taskforce-lab/ssh/id_ed25519")


def load(spec: str) -> dict:
    return yaml.safe_load(inventory.render(parse_nodes(spec, "10.77.0"), KEY))


def test_every_node_is_a_host_with_its_address():
    data = load("core1,core2,core3,worker1,worker2")
    hosts = data["all"]["hosts"]
    assert hosts["core2"] == {"ansible_host": "10.77.0.12"}
    assert hosts["worker2"] == {"ansible_host": "10.77.0.22"}


def test_groups_follow_the_design():
    children = load("core1,core2,core3,worker1,worker2")["all"]["children"]
    for group in ("rabbitmq", "orchestrators", "gateways"):
        assert list(children[group]["hosts"]) == ["core1", "core2", "core3"]
    for group in ("workers_python", "workers_java"):
        assert list(children[group]["hosts"]) == ["worker1", "worker2"]


def test_connection_settings_reach_the_nodes_without_prompts():
    lab_vars = load("core1")["all"]["vars"]
    assert lab_vars["ansible_user"] == "root"
    assert lab_vars["ansible_ssh_private_key_file"] == str(KEY)
    assert "StrictHostKeyChecking=no" in lab_vars["ansible_ssh_common_args"]
    assert "UserKnownHostsFile=/dev/null" in lab_vars["ansible_ssh_common_args"]


def test_empty_groups_are_still_declared():
    children = load("core1")["all"]["children"]
    assert children["workers_java"]["hosts"] == {}


def test_write_replaces_the_file(tmp_path):
    target = tmp_path / "lab" / "hosts.yml"
    inventory.write(target, parse_nodes("core1", "10.77.0"), KEY)
    inventory.write(target, parse_nodes("core1,worker1", "10.77.0"), KEY)
    assert "worker1" in yaml.safe_load(target.read_text())["all"]["hosts"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["hosts.yml"]


def test_nodes_outside_the_cluster_are_left_out():
    data = load("core1,worker1,mol-rmq1,scratch")
    assert set(data["all"]["hosts"]) == {"core1", "worker1"}
