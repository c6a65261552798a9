"""What each machine back end actually does for a fault, with the machines replaced by
recorders: lab faults go to lab/faults.py, service faults to systemctl, real machines get
nftables rules and sysrq."""
import json

import pytest

from drills.targets.inventory import LabTarget, SshTarget

from .test_drill_parts import HOSTS


@pytest.fixture
def inv_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("TASKFORCE_TOKEN", raising=False)
    (tmp_path / "hosts.yml").write_text(HOSTS)
    (tmp_path / ".secrets.yml").write_text("taskforce_secrets:\n  api_tokens:\n    admin: tok-admin\n")
    return tmp_path


@pytest.fixture
def lab_state(tmp_path, monkeypatch):
    state = tmp_path / "labstate"
    state.mkdir()
    nodes = [{"name": n, "address": a, "image": "", "pid": 1} for n, a in
             [("core1", "10.0.0.11"), ("core2", "10.0.0.12"), ("core3", "10.0.0.13"), ("worker1", "10.0.0.21")]]
    (state / "state.json").write_text(json.dumps({"nodes": nodes}))
    monkeypatch.setenv("TASKFORCE_LAB_STATE_DIR", str(state))
    return state


def test_lab_faults_go_through_lab_faults_and_systemctl(inv_dir, lab_state, monkeypatch):
    from lab import faults
    calls = []
    for name in ("power_cut", "start", "pause", "resume", "partition_groups", "heal"):
        monkeypatch.setattr(faults, name, lambda *a, _n=name, **k: calls.append(
            (_n, tuple(x for x in a if not hasattr(x, "state_dir")))))

    class P:
        returncode, stdout, stderr = 0, "", ""
    monkeypatch.setattr(faults, "run", lambda node, argv, **k: calls.append(("run", node, argv[-1])) or P())
    t = LabTarget(inv_dir)
    assert t.token == "tok-admin" and t.kind == "lab"
    orch = t.orchestrator_at("10.0.0.12:7000")
    t.crash(orch)
    t.pause(orch)
    t.resume(orch)
    t.power_cut("worker1")
    t.boot("worker1")
    t.partition(["core1"], ["core2", "core3"])
    t.heal_partitions()
    java = t.of("worker", "java")[0]
    t.restart(java)
    assert calls == [
        ("run", "core2", "systemctl kill -s KILL taskforce-orchestrator; systemctl stop taskforce-orchestrator"),
        ("run", "core2", "systemctl kill -s STOP taskforce-orchestrator"),
        ("run", "core2", "systemctl kill -s CONT taskforce-orchestrator"),
        ("power_cut", ("worker1",)), ("start", ("worker1",)),
        ("partition_groups", (["core1"], ["core2", "core3"])), ("heal", ()),
        ("run", "worker1", "systemctl restart taskforce-worker-java"),
    ]
    python = t.of("worker", "python")[0]
    t.crash(python)
    units = "$(systemctl list-units --all --plain --no-legend --type=service 'taskforce-worker@*' | awk '{print $1}')"
    assert calls[-1][2] == f"systemctl kill -s KILL {units}; systemctl stop {units}"


def test_lab_target_refuses_an_inventory_the_lab_does_not_hold(inv_dir, lab_state):
    from drills.targets.base import Refused
    (lab_state / "state.json").write_text(json.dumps({"nodes": []}))
    with pytest.raises(Refused, match="is the lab up"):
        LabTarget(inv_dir)


def test_real_machines_get_nftables_rules_that_spare_the_controller(inv_dir):
    t = SshTarget(inv_dir)
    sent = []
    t.remote = lambda node, cmd, timeout=60, check=True: sent.append((node, cmd)) or (0, "")
    t.partition(["core1"], ["core2", "core3"])
    by_node = {n: c for n, c in sent}
    assert set(by_node) == {"core1", "core2", "core3"}
    assert "ip saddr '{ 10.0.0.12, 10.0.0.13 }' drop" in by_node["core1"]
    assert "ip daddr '{ 10.0.0.12, 10.0.0.13 }' drop" in by_node["core1"]
    assert "ip saddr '{ 10.0.0.11 }' drop" in by_node["core2"]
    assert all("table inet tfdrill" in c for c in by_node.values())
    sent.clear()
    t.heal_partitions()
    assert {n for n, _ in sent} == set(t.nodes()) and all("nft delete table inet tfdrill" in c for _, c in sent)
    sent.clear()
    t.power_cut("worker1")
    assert sent and "sysrq-trigger" in sent[0][1]
    argv = t.ssh_argv("worker1")
    assert argv[-1] == "root@10.0.0.21" and "BatchMode=yes" in argv
