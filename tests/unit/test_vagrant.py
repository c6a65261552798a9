"""The Vagrant cluster and its inventory agree, and the inventory passes the same shape rules
as every other (odd-sized RabbitMQ and Raft groups, unique names and addresses)."""
import ipaddress
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
INV = REPO / "inventories" / "vagrant" / "hosts.yml"


@pytest.fixture(scope="module")
def inventory():
    return yaml.safe_load(INV.read_text())["all"]


def test_vagrantfile_reads_this_inventory_and_provisions_all_once():
    vf = (REPO / "Vagrantfile").read_text()
    assert '"inventories", "vagrant", "hosts.yml"' in vf
    assert 'ansible.limit = "all"' in vf and "i == hosts.size - 1" in vf
    assert 'ansible.playbook = "playbooks/site.yml"' in vf


def test_every_machine_has_a_unique_private_address(inventory):
    addrs = [h["ansible_host"] for h in inventory["hosts"].values()]
    assert len(addrs) == len(set(addrs))
    for a in addrs:
        assert ipaddress.ip_address(a).is_private
    for name in inventory["hosts"]:
        assert re.fullmatch(r"[a-z][a-z0-9-]*", name), "hostnames become rabbit@<name>"


def test_groups_are_odd_and_name_known_hosts(inventory):
    hosts = set(inventory["hosts"])
    kids = inventory["children"]
    for g in ("rabbitmq", "orchestrators"):
        assert len(kids[g]["hosts"]) % 2 == 1
    for g in ("rabbitmq", "orchestrators", "gateways", "workers_python", "workers_java"):
        assert kids[g]["hosts"] and set(kids[g]["hosts"]) <= hosts


@pytest.mark.skipif(not shutil.which("vagrant"), reason="vagrant is not installed")
def test_vagrant_validate():
    # No provider (VirtualBox, libvirt) can run here; the Vagrantfile itself is what is checked.
    r = subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_last_vm_gets_a_key_every_vm_trusts():
    vf = (REPO / "Vagrantfile").read_text()
    assert "config.trigger.before :up" in vf and "ssh-keygen" in vf
    assert "authorized_keys" in vf and "install -m 0600" in vf
    gv = yaml.safe_load((REPO / "inventories" / "vagrant" / "group_vars" / "all" / "vagrant.yml").read_text())
    assert gv["ansible_ssh_private_key_file"] == "/home/vagrant/.ssh/cluster_ed25519"
    assert "/home/vagrant/.ssh/cluster_ed25519" in vf
