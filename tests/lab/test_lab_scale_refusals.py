"""playbooks/scale.yml and remove-node.yml refuse, before they touch a host, what would leave
a broken cluster: a host not in the inventory, a quorum group left even or below three, a
worker language or the gateways left without a host. Only refusals are run here: the plays
that pass go on to stop and start services. Needs ansible-playbook, not root and not the lab."""

from __future__ import annotations

import os
import subprocess

from .test_lab_pre_checks import PLAYBOOK, REPO, error_line, inventory, pytestmark  # noqa: F401

FIVE = ["core1", "core2", "core3", "core4", "core5"]
CORE5 = {"rabbitmq": FIVE, "orchestrators": FIVE, "gateways": FIVE,
         "workers_python": ["worker1", "worker2"], "workers_java": ["worker1"]}


def play(directory, playbook: str, **extra_vars) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "playbooks" / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    args = [PLAYBOOK, "-i", str(directory), str(REPO / "playbooks" / playbook)]
    for k, v in extra_vars.items():
        args += ["-e", f"{k}={v}"]
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def refused(tmp_path, playbook: str, **extra_vars) -> str:
    result = play(inventory(tmp_path, CORE5), playbook, **extra_vars)
    assert result.returncode != 0, result.stdout + result.stderr
    return error_line(result)


def test_removing_one_core_host_of_five_is_refused(tmp_path):
    line = refused(tmp_path, "remove-node.yml", scale_remove="core5")
    assert "leaves 4 hosts in rabbitmq" in line and "two at a time" in line


def test_removing_three_core_hosts_of_five_is_refused(tmp_path):
    assert "leaves 2 hosts in rabbitmq" in refused(tmp_path, "remove-node.yml", scale_remove="core3,core4,core5")


def test_removing_an_unknown_host_is_refused(tmp_path):
    assert "hosts of this inventory" in refused(tmp_path, "remove-node.yml", scale_remove="core9")


def test_removing_nothing_is_refused(tmp_path):
    assert "give -e scale_remove=HOST" in refused(tmp_path, "remove-node.yml")


def test_removing_the_last_java_host_is_refused(tmp_path):
    assert "would leave no host in workers_java" in refused(tmp_path, "remove-node.yml", scale_remove="worker1")


def test_adding_a_host_outside_the_inventory_is_refused(tmp_path):
    assert "core7 must be in the inventory" in refused(tmp_path, "scale.yml", scale_nodes="core7")
