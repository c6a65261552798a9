"""playbooks/check.yml against small inventories of local hosts: a bad
inventory stops at once with one clear line; a good one passes and gets its
secrets generated once. Needs ansible-playbook, not root and not the lab."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or shutil.which("ansible-playbook")
pytestmark = pytest.mark.skipif(PLAYBOOK is None, reason="ansible-playbook is not installed (pip install -r mk/lab-requirements.txt)")


def inventory(tmp_path: Path, groups: dict[str, list[str]], host_vars: dict | None = None, **extra) -> Path:
    hosts = sorted({h for members in groups.values() for h in members})
    data = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 # a package every Debian host has, so the version check needs no apt lists
                 "pre_checks_rabbitmq_package": "dpkg", **extra},
        "hosts": {h: (host_vars or {}).get(h) for h in hosts},
        "children": {g: {"hosts": {h: None for h in members}} for g, members in groups.items()},
    }}
    directory = tmp_path / "inventory"
    directory.mkdir(exist_ok=True)
    (directory / "hosts.yml").write_text(yaml.safe_dump(data))
    return directory


def check(directory: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "playbooks" / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    return subprocess.run([PLAYBOOK, "-i", str(directory), str(REPO / "playbooks" / "check.yml")],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def error_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stdout.splitlines() + result.stderr.splitlines() if line.startswith("[ERROR]")]
    assert len(lines) == 1, result.stdout + result.stderr
    return lines[0]


THREE = ["core1", "core2", "core3"]
GOOD = {"rabbitmq": THREE, "orchestrators": THREE, "gateways": THREE}


def test_a_good_inventory_passes_and_gets_private_secrets_once(tmp_path):
    directory = inventory(tmp_path, GOOD)
    first = check(directory)
    assert first.returncode == 0, first.stdout + first.stderr
    secrets_file = directory / ".secrets.yml"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    secrets = yaml.safe_load(secrets_file.read_text())["taskforce_secrets"]
    assert set(secrets["amqp_passwords"]) == {"admin", "gateway", "orchestrator", "worker"}
    assert set(secrets["api_tokens"]) == {"admin", "client"}
    assert secrets["erlang_cookie"].isupper() and len(secrets["erlang_cookie"]) == 32
    assert len({secrets["raft_password"], secrets["internal_token"], *secrets["amqp_passwords"].values()}) == 6

    before = secrets_file.read_text()
    second = check(directory)
    assert second.returncode == 0
    assert secrets_file.read_text() == before, "a rerun must reuse the secrets"


def test_a_missing_secret_is_added_and_the_others_kept(tmp_path):
    directory = inventory(tmp_path, GOOD)
    assert check(directory).returncode == 0
    data = yaml.safe_load((directory / ".secrets.yml").read_text())
    old_cookie = data["taskforce_secrets"]["erlang_cookie"]
    del data["taskforce_secrets"]["raft_password"]
    (directory / ".secrets.yml").write_text(yaml.safe_dump(data))
    assert check(directory).returncode == 0
    again = yaml.safe_load((directory / ".secrets.yml").read_text())["taskforce_secrets"]
    assert again["erlang_cookie"] == old_cookie and again["raft_password"]


def test_an_even_broker_group_stops_with_one_line(tmp_path):
    result = check(inventory(tmp_path, dict(GOOD, rabbitmq=["core1", "core2"])))
    assert result.returncode != 0
    assert "rabbitmq has 2 hosts" in error_line(result)


def test_an_even_orchestrator_group_stops_with_one_line(tmp_path):
    result = check(inventory(tmp_path, dict(GOOD, orchestrators=["core1", "core2", "core3", "core4"])))
    assert "orchestrators has 4 hosts" in error_line(result)


def test_a_missing_group_stops_with_one_line(tmp_path):
    result = check(inventory(tmp_path, {"rabbitmq": THREE, "orchestrators": THREE}))
    assert "gateways have no hosts" in error_line(result)


def test_missing_secrets_stop_with_one_line(tmp_path):
    result = check(inventory(tmp_path, GOOD, secrets_generate=False))
    line = error_line(result)
    assert "missing secrets" in line and "erlang_cookie" in line and "ansible-vault" in line
    assert not (tmp_path / "inventory" / ".secrets.yml").exists()


def test_secrets_from_the_inventory_are_used_as_they_are(tmp_path):
    supplied = {"erlang_cookie": "C" * 32, "raft_password": "r" * 16, "internal_token": "i" * 16,
                "amqp_passwords": {u: u * 4 for u in ("admin", "gateway", "orchestrator", "worker")},
                "api_tokens": {"admin": "a" * 16, "client": "c" * 16}}
    directory = inventory(tmp_path, GOOD, secrets_generate=False, taskforce_secrets=supplied)
    result = check(directory)
    assert result.returncode == 0, result.stdout
    assert not (directory / ".secrets.yml").exists()


def test_an_incomplete_vault_names_what_is_missing(tmp_path):
    supplied = {"erlang_cookie": "C" * 32, "raft_password": "r" * 16, "internal_token": "i" * 16,
                "amqp_passwords": {"admin": "x" * 8}, "api_tokens": {"admin": "a" * 16}}
    result = check(inventory(tmp_path, GOOD, secrets_generate=False, taskforce_secrets=supplied))
    assert "amqp_passwords.gateway" in error_line(result)


def test_an_unsupported_os_stops_with_one_line(tmp_path):
    result = check(inventory(tmp_path, GOOD, pre_checks_supported_platforms=["Ubuntu 24.04"]))
    assert "unsupported OS on core1" in error_line(result)


def test_mixed_rabbitmq_versions_stop_with_one_line(tmp_path):
    # dpkg and bash have different release series: stand-ins for 3.10 and 3.12.
    result = check(inventory(tmp_path, GOOD, host_vars={"core3": {"pre_checks_rabbitmq_package": "bash"}}))
    line = error_line(result)
    assert "mixed or unknown RabbitMQ versions" in line and "core3" in line
