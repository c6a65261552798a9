"""Host-side pieces that need no root: nft rule text, state files, node files."""

import os
import subprocess
import time
from pathlib import Path

import pytest

from lab import hostnet, nodes, state
from lab.progress import Progress
from lab.settings import Settings
from lab.topology import Node


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(cache_dir=tmp_path / "cache", state_dir=tmp_path / "state", bridge="br-test",
                    subnet_prefix="10.77.0", nft_table="tftest", inventory_dir=tmp_path / "inv")


def test_partition_drops_both_directions_and_names_the_nodes(settings):
    rules = hostnet.partition_rules(settings, Node("core1", "10.77.0.11"), Node("core2", "10.77.0.12"))
    lines = rules.strip().splitlines()
    assert len(lines) == 2
    assert "ip saddr 10.77.0.11 ip daddr 10.77.0.12 drop" in lines[0]
    assert "ip saddr 10.77.0.12 ip daddr 10.77.0.11 drop" in lines[1]
    assert all("inet tftest lab_fwd" in line and "core1 x core2" in line for line in lines)


def test_isolate_drops_everything_to_and_from_the_node(settings):
    rules = hostnet.isolate_rules(settings, Node("worker1", "10.77.0.21"))
    assert "ip saddr 10.77.0.21 drop" in rules and "ip daddr 10.77.0.21 drop" in rules


def test_state_round_trips(settings):
    lab = state.LabState([state.NodeState("core1", "10.77.0.11", "/img", 1234)])
    state.save(settings.state_file, lab)
    again = state.load(settings.state_file)
    assert again == lab
    assert again.get("core1").pid == 1234
    with pytest.raises(KeyError, match="no node 'core9'"):
        again.get("core9")


def test_missing_state_is_an_empty_lab(settings):
    assert state.load(settings.state_file).nodes == []


def test_nspawn_command_boots_on_an_overlay_with_the_shared_hosts(settings):
    argv = nodes.nspawn_command(settings, Node("core1", "10.77.0.11"), Path("/img/rootfs"))
    assert "--register=no" in argv and "--keep-unit" in argv and "--boot" in argv
    assert f"--overlay=/img/rootfs:{settings.nodes_dir / 'core1' / 'upper'}:/" in argv
    assert "--network-bridge=br-test" in argv
    assert f"--bind-ro={settings.hosts_file}:/etc/hosts" in argv


def test_host_veth_name_is_nspawns():
    assert nodes.host_veth("core1") == "vb-core1"


def test_network_unit_has_the_address_and_no_gateway(settings):
    unit = nodes.network_unit(Node("core1", "10.77.0.11"), settings)
    assert "Name=host0" in unit and "Address=10.77.0.11/24" in unit
    assert "Gateway" not in unit


def test_prepare_lays_per_node_files_with_the_image_modes(settings, tmp_path):
    rootfs = tmp_path / "rootfs"
    for path, mode in (("etc", 0o755), ("etc/ssh", 0o755), ("etc/systemd", 0o755),
                       ("etc/systemd/network", 0o755), ("root", 0o700), ("root/.ssh", 0o700)):
        (rootfs / path).mkdir(parents=True, exist_ok=True)
        (rootfs / path).chmod(mode)
    upper = nodes.prepare(settings, Node("core1", "10.77.0.11"), rootfs, "ssh-ed25519 AAAA test")
    assert (upper / "etc/hostname").read_text() == "core1\n"
    assert (upper / "root").stat().st_mode & 0o777 == 0o700
    assert (upper / "root/.ssh/authorized_keys").read_text() == "ssh-ed25519 AAAA test\n"
    assert list((upper / "etc/ssh").glob("ssh_host_ed25519_key"))
    assert not list((upper / "etc/ssh").glob("ssh_host_rsa_key")), "no slow RSA keys"
    assert "HostKey /etc/ssh/ssh_host_ed25519_key" in (upper / "etc/ssh/sshd_config.d/10-lab-host-keys.conf").read_text()
    machine_id = (upper / "etc/machine-id").read_text()
    nodes.prepare(settings, Node("core1", "10.77.0.11"), rootfs, "ssh-ed25519 AAAA test")
    assert (upper / "etc/machine-id").read_text() == machine_id, "a node keeps its identity across boots"


def test_process_tree_finds_children():
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert child.pid in nodes.process_tree(os.getpid())
    finally:
        child.kill()
        child.wait()


def test_is_running_only_matches_the_nodes_nspawn():
    assert not nodes.is_running(os.getpid(), "core1")
    assert not nodes.is_running(None, "core1")


def test_progress_lines_carry_elapsed_seconds(capsys):
    progress = Progress()
    with progress.step("thing"):
        time.sleep(0.01)
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("thing ...") and out[0].startswith("[")
    assert "thing: done in" in out[1]
