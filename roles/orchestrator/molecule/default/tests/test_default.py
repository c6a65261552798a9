"""The orchestrator role: a hardened unit that leads its one-node Raft group."""

import json
import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("orchestrators")


def test_unit_is_hardened_and_running(host):
    assert host.service("taskforce-orchestrator").is_running
    props = host.check_output("systemctl show taskforce-orchestrator -p User -p NoNewPrivileges -p ProtectSystem -p Restart")
    assert "User=taskforce" in props and "NoNewPrivileges=yes" in props
    assert "ProtectSystem=strict" in props and "Restart=on-failure" in props


def test_config_is_private(host):
    config = host.file("/etc/taskforce/orchestrator.toml")
    assert config.mode == 0o640 and config.group == "taskforce"


def test_it_leads_and_keeps_its_journal_on_disk(host):
    token = host.check_output("sed -n 's/^internal_token = \"\\(.*\\)\"/\\1/p' /etc/taskforce/orchestrator.toml")
    address = host.check_output("sed -n 's/^http_listen = \"\\(.*\\)\"/\\1/p' /etc/taskforce/orchestrator.toml")
    status = json.loads(host.check_output(f"curl -sf -H 'Authorization: Bearer {token}' http://{address}/status"))
    assert status["state"] == "leader" and status["has_quorum"]
    assert host.file("/var/lib/taskforce/raft").user == "taskforce"
