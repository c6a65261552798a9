"""Pre-checks only read: the node is left exactly as it was."""

import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("all")


def test_nothing_was_installed_or_created(host):
    assert not host.user("taskforce").exists
    assert not host.file("/etc/taskforce").exists
    assert not host.service("rabbitmq-server").is_running
