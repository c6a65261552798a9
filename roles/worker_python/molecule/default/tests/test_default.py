"""The worker_python role: template instances, hardened, running the app from its venv."""

import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("workers_python")


def test_first_instance_runs_as_taskforce(host):
    assert host.service("taskforce-worker@1").is_running
    props = host.check_output("systemctl show taskforce-worker@1 -p User -p ProtectSystem -p ExecStart")
    assert "User=taskforce" in props and "ProtectSystem=strict" in props
    assert "/opt/taskforce/venv/bin/taskforce" in props


def test_app_was_installed_offline_from_the_wheelhouse(host):
    assert host.file("/opt/taskforce/wheelhouse").is_directory
    assert host.run("/opt/taskforce/venv/bin/python -m pip show taskforce").rc == 0
