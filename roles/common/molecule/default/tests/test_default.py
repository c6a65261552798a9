"""The common role on a fresh node: user, directories, sysctl, journald, firewall."""

import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("all")


def test_service_user_cannot_log_in(host):
    user = host.user("taskforce")
    assert user.exists and user.shell == "/usr/sbin/nologin" and user.home == "/var/lib/taskforce"


def test_config_directory_is_private_to_the_service_group(host):
    directory = host.file("/etc/taskforce")
    assert directory.user == "root" and directory.group == "taskforce" and directory.mode == 0o750


def test_sysctl_applied(host):
    assert host.sysctl("net.core.somaxconn") == 4096


def test_journald_drop_in(host):
    assert host.file("/etc/systemd/journald.conf.d/60-taskforce.conf").contains("^SystemMaxUse=")


def test_firewall_drops_by_default_and_opens_only_the_service_ports(host):
    assert host.service("nftables").is_enabled
    rules = host.check_output("nft list table inet taskforce")
    assert "policy drop" in rules
    for port in ("5672", "4321", "7100", "8080", "25672"):
        assert port in rules
    # Raft is open to orchestrator peers only, never to everyone.
    raft = [line for line in rules.splitlines() if "4321" in line]
    assert raft and all("ip saddr" in line for line in raft)
