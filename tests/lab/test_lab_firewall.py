"""The common role's nftables template, rendered on the controller for small
inventories: each port is open only to the hosts that need it, and a group
without hosts never yields an empty (invalid) address set."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or shutil.which("ansible-playbook")
pytestmark = pytest.mark.skipif(PLAYBOOK is None, reason="ansible-playbook is not installed")

RENDER = """
- hosts: all
  gather_facts: false
  roles: [{role: common, tags: never}]
  tasks:
    - ansible.builtin.template:
        src: %s/roles/common/templates/nftables.conf.j2
        dest: "{{ out_dir }}/{{ inventory_hostname }}.nft"
"""


def render(tmp_path: Path, hosts: dict[str, str], groups: dict[str, list[str]]) -> dict[str, str]:
    inventory = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                                  "out_dir": str(tmp_path)},
                         "hosts": {h: {"ansible_host": a} for h, a in hosts.items()},
                         "children": {g: {"hosts": {h: None for h in m}} for g, m in groups.items()}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    playbook = REPO / "playbooks" / f".render-{os.getpid()}.yml"
    playbook.write_text(RENDER % REPO)
    try:
        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "playbooks" / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
        result = subprocess.run([PLAYBOOK, "-i", str(tmp_path / "hosts.yml"), str(playbook)],
                                capture_output=True, text=True, env=env, timeout=300)
    finally:
        playbook.unlink()
    assert result.returncode == 0, result.stdout + result.stderr
    return {h: (tmp_path / f"{h}.nft").read_text() for h in hosts}


def rule(text: str, port: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if f"dport {port} " in line or f"dport {{ {port}" in line]


def test_each_port_opens_only_to_the_hosts_that_need_it(tmp_path):
    hosts = {"c1": "10.0.0.11", "c2": "10.0.0.12", "c3": "10.0.0.13", "w1": "10.0.0.21"}
    core = ["c1", "c2", "c3"]
    out = render(tmp_path, hosts, {"rabbitmq": core, "orchestrators": core, "gateways": core, "workers_python": ["w1"]})
    assert rule(out["c1"], "4321") == ["ip saddr { 10.0.0.11, 10.0.0.12, 10.0.0.13 } tcp dport 4321 accept"]
    assert "10.0.0.21" in rule(out["c1"], "5672")[0]
    assert "10.0.0.21" not in rule(out["c1"], "4369")[0]
    assert rule(out["c1"], "8080") == ["tcp dport 8080 accept"]
    # The orchestrators' internal API: gateways read records, orchestrators change the membership.
    assert rule(out["c1"], "7100") == ["ip saddr { 10.0.0.11, 10.0.0.12, 10.0.0.13 } tcp dport 7100 accept"]
    # A worker opens nothing but SSH.
    assert rule(out["w1"], "5672") == [] and rule(out["w1"], "4321") == [] and "dport 22 accept" in out["w1"]
    assert "policy drop" in out["w1"]


def test_a_cluster_without_gateways_renders_no_empty_set(tmp_path):
    out = render(tmp_path, {"o1": "10.0.0.31"}, {"rabbitmq": ["o1"], "orchestrators": ["o1"]})
    assert "{  }" not in out["o1"] and "{ }" not in out["o1"]
    # With no gateway, the internal API is open to the orchestrators alone.
    assert rule(out["o1"], "7100") == ["ip saddr { 10.0.0.31 } tcp dport 7100 accept"]
