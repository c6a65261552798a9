"""Tests against the running lab (`python -m lab up` + playbooks/site.yml).

Hosts come from inventories/lab/hosts.yml; testinfra reaches them over SSH with
the lab's key. Every test here is skipped, with the reason, when the lab is
not up, so `pytest tests/` stays green on a machine without it.
"""

from __future__ import annotations

import os
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INVENTORY_DIR = Path(os.environ.get("TASKFORCE_LAB_INVENTORY_DIR", REPO / "inventories" / "lab"))
INVENTORY = INVENTORY_DIR / "hosts.yml"
SECRETS = INVENTORY_DIR / ".secrets.yml"
SSH_OPTS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes"


@lru_cache(maxsize=1)
def inventory() -> dict:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(INVENTORY.read_text())


def hosts_in(group: str) -> list[str]:
    return list((inventory()["all"]["children"].get(group, {}) or {}).get("hosts", {}) or {})


def address(host: str) -> str:
    return inventory()["all"]["hosts"][host]["ansible_host"]


@lru_cache(maxsize=1)
def lab_problem() -> str | None:
    """Why the lab cannot be tested, or None when it can."""
    if not INVENTORY.exists():
        return f"the lab is not up ({INVENTORY} missing): run `python -m lab up` and playbooks/site.yml"
    try:
        data = inventory()
        first = next(iter(data["all"]["hosts"]))
        key = data["all"]["vars"]["ansible_ssh_private_key_file"]
    except (KeyError, StopIteration, TypeError):
        return f"{INVENTORY} has no hosts"
    probe = subprocess.run(["ssh", "-i", key, *SSH_OPTS.split(), "-o", "ConnectTimeout=3",
                            f"root@{address(first)}", "true"], capture_output=True, timeout=20)
    if probe.returncode != 0:
        return f"the lab is not reachable (ssh to {first} failed): run `python -m lab up`"
    return None


def pytest_collection_modifyitems(config, items):  # re-exported by conftest.py
    here = Path(__file__).parent
    ours = [item for item in items if here in Path(str(item.fspath)).parents]
    for item in ours:
        item.add_marker(pytest.mark.cluster)
    if ours and lab_problem():
        skip = pytest.mark.skip(reason=lab_problem())
        for item in ours:
            item.add_marker(skip)


@lru_cache(maxsize=None)
def host(name: str):
    testinfra = pytest.importorskip("testinfra")
    key = inventory()["all"]["vars"]["ansible_ssh_private_key_file"]
    return testinfra.get_host(f"ssh://root@{address(name)}", ssh_identity_file=key,
                              ssh_extra_args=SSH_OPTS)


@pytest.fixture(scope="session")
def secrets() -> dict:
    yaml = pytest.importorskip("yaml")
    if not SECRETS.exists():
        pytest.skip(f"{SECRETS} missing: run playbooks/site.yml on the lab first")
    return yaml.safe_load(SECRETS.read_text())["taskforce_secrets"]
