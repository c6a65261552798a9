"""The common role on every lab node: service user, directories, firewall."""

import pytest

from tests.cluster.cluster_lab import address, host, hosts_in, inventory



def all_hosts() -> list[str]:
    try:
        return list(inventory()["all"]["hosts"])
    except Exception:  # no inventory: every test is skipped by conftest anyway
        return ["absent"]


def tcp_probe(source: str, target: str, port: int) -> str:
    """'open', 'refused' (reachable, nothing listening) or 'dropped' (firewalled)."""
    cmd = host(source).run(f"timeout 3 bash -c '</dev/tcp/{address(target)}/{port}'")
    if cmd.rc == 0:
        return "open"
    return "dropped" if cmd.rc == 124 else "refused"


@pytest.mark.parametrize("name", all_hosts())
def test_service_user_and_directories(name):
    node = host(name)
    user = node.user("taskforce")
    assert user.exists and user.shell == "/usr/sbin/nologin"
    config = node.file("/etc/taskforce")
    assert config.is_directory and config.mode == 0o750 and config.group == "taskforce"
    assert node.file("/var/lib/taskforce").user == "taskforce"


@pytest.mark.parametrize("name", all_hosts())
def test_firewall_is_on_with_a_drop_policy(name):
    node = host(name)
    assert node.service("nftables").is_enabled
    rules = node.run("nft list table inet taskforce").stdout
    assert "policy drop" in rules


@pytest.mark.parametrize("name", all_hosts())
def test_sysctl_and_journald_settings_apply(name):
    node = host(name)
    assert node.sysctl("net.ipv4.tcp_keepalive_time") == 60
    assert node.file("/etc/systemd/journald.conf.d/60-taskforce.conf").contains("SystemMaxUse=")


def test_workers_reach_amqp_but_not_erlang_distribution_or_raft():
    worker, broker = hosts_in("workers_python")[0], hosts_in("rabbitmq")[0]
    assert tcp_probe(worker, broker, 5672) == "open"
    assert tcp_probe(worker, broker, 25672) == "dropped"
    assert tcp_probe(worker, broker, 4321) == "dropped"


def test_brokers_reach_each_others_erlang_distribution():
    first, second = hosts_in("rabbitmq")[:2]
    assert tcp_probe(first, second, 25672) == "open"


def test_raft_port_is_open_to_orchestrator_peers_only():
    first, second = hosts_in("orchestrators")[:2]
    # Reaches the host (refused or open once the orchestrator runs), not dropped.
    assert tcp_probe(first, second, 4321) in ("open", "refused")
