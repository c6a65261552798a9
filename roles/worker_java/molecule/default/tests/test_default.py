"""The worker_java role: the jar under a hardened unit with a bounded heap."""

import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("workers_java")


def test_unit_runs_the_jar_with_a_bounded_heap(host):
    assert host.service("taskforce-worker-java").is_running
    props = host.check_output("systemctl show taskforce-worker-java -p User -p ExecStart")
    assert "User=taskforce" in props
    assert "-Xmx128m" in props and "/opt/taskforce/taskforce-worker.jar" in props


def test_config_is_private(host):
    config = host.file("/etc/taskforce/worker-java.toml")
    assert config.mode == 0o640 and config.group == "taskforce"
