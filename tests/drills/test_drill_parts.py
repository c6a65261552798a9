"""The drills' pure parts: reading inventories, the cluster view, execution lines, tags, the
report table and the timeline's numbers."""
import time
from pathlib import Path

import pytest

from drills.catalogue import CATALOGUE, ORDER
from drills.executions import LogTail, parse_exec, parse_execs
from drills.history import History, load
from drills.plot import series
from drills.report import table
from drills.runner import DrillResult
from drills.targets.base import CRASH, PAUSE, STOP, Refused, parse_cluster
from drills.targets.inventory import Inventory, SshTarget
from drills.workload import JobKind, Workload, WorkloadConfig, op_of_tags

HOSTS = """
all:
  vars:
    ansible_user: root
  hosts:
    core1: {ansible_host: 10.0.0.11}
    core2: {ansible_host: 10.0.0.12}
    core3: {ansible_host: 10.0.0.13}
    worker1: {ansible_host: 10.0.0.21}
    unrelated: {ansible_host: 10.0.0.99}
  children:
    rabbitmq: {hosts: {core1: null, core2: null, core3: null}}
    orchestrators: {hosts: {core1: null, core2: null, core3: null}}
    gateways: {hosts: {core1: null, core2: null}}
    workers:
      children:
        workers_python: {hosts: {worker1: null}}
        workers_java: {hosts: {worker1: null}}
"""


@pytest.fixture
def inv_dir(tmp_path: Path) -> Path:
    (tmp_path / "hosts.yml").write_text(HOSTS)
    (tmp_path / "group_vars" / "gateways").mkdir(parents=True)
    (tmp_path / "group_vars" / "gateways" / "gateway.yml").write_text("gateway_port: 9090\n")
    (tmp_path / ".secrets.yml").write_text("taskforce_secrets:\n  api_tokens:\n    client: tok-client\n")
    return tmp_path


def test_an_inventory_gives_components_units_and_gateway_urls(inv_dir, monkeypatch):
    monkeypatch.delenv("TASKFORCE_TOKEN", raising=False)
    t = SshTarget(inv_dir)
    assert [g.address for g in t.gateways] == ["http://10.0.0.11:9090", "http://10.0.0.12:9090"]
    assert t.nodes("rabbitmq") == ["core1", "core2", "core3"]
    assert {(c.node, c.lang, c.unit) for c in t.of("worker")} == {
        ("worker1", "python", "taskforce-worker@*"), ("worker1", "java", "taskforce-worker-java")}
    assert t.expected_workers() == {("worker1", "python"), ("worker1", "java")}
    assert t.token == "tok-client"
    assert "unrelated" not in t.nodes()
    assert t.orchestrator_at("10.0.0.12:7000").name == "core2/orchestrator"
    assert t.orchestrator_at("core3:7000").node == "core3"
    assert t.node_victim("core1")["roles"] == ["gateway", "orchestrator", "rabbitmq"]
    assert t.capabilities >= {CRASH, STOP, PAUSE}


def test_an_inventory_without_the_app_groups_or_a_token_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("TASKFORCE_TOKEN", raising=False)
    (tmp_path / "hosts.yml").write_text("all:\n  hosts:\n    a: {}\n")
    with pytest.raises(Refused, match="no hosts in rabbitmq, orchestrators, gateways"):
        SshTarget(tmp_path)
    (tmp_path / "hosts.yml").write_text(HOSTS)
    with pytest.raises(Refused, match="no API token"):
        SshTarget(tmp_path)
    with pytest.raises(Refused, match="no inventory"):
        Inventory(tmp_path / "nowhere")


def test_group_vars_nest_and_host_vars_win(inv_dir):
    (inv_dir / "host_vars").mkdir()
    (inv_dir / "host_vars" / "core2.yml").write_text("gateway_port: 7777\n")
    inv = Inventory(inv_dir)
    assert inv.var("core1", "gateway_port") == 9090 and inv.var("core2", "gateway_port") == 7777
    assert inv.groups["workers"] == ["worker1"]
    assert inv.var("worker1", "ansible_user") == "root"


def test_parse_cluster_finds_the_committed_leader_and_the_unreachable():
    body = {"raft": {"members": [
        {"self": "a:1", "state": "leader", "term": 7, "leader": "a:1", "schedule": {"leader": "a:1", "epoch": 4}},
        {"self": "b:1", "state": "follower", "leader": "a:1", "schedule": {"leader": "a:1", "epoch": 4}},
        {"url": "http://c", "error": "ConnectError"}]},
        "rabbitmq": {"nodes": [{"address": "r1", "reachable": True}, {"address": "r2", "reachable": False}]}}
    v = parse_cluster(body, "gw1", 1.0)
    assert (v.leader, v.epoch, v.term, v.self_declared_leaders) == ("a:1", 4, 7, 1)
    assert v.unreachable == ["http://c"] and v.rabbit_unreachable == ["r2"]
    # A leader by Raft that has not committed its epoch yet does not count as the leader.
    body["raft"]["members"][0]["schedule"] = {"leader": "b:1", "epoch": 3}
    v = parse_cluster(body, "gw1", 1.0)
    assert v.leader is None and v.self_declared_leaders == 1 and v.epoch == 4


def test_execution_lines_are_found_in_any_log_line():
    line = 'INFO something {"exec": "abc", "attempt": 2, "node": "w1", "worker_id": "w1-py-9"}'
    assert parse_exec(line) == {"id": "abc", "attempt": 2, "node": "w1", "worker_id": "w1-py-9"}
    assert parse_exec('{"exec": 5}') is None
    assert parse_exec("no json here") is None
    assert parse_exec('{"exec": "x", "attempt": 1') is None


def test_two_execution_records_on_one_line_are_both_found():
    # Two handler processes writing "text" and "\n" separately interleave like this.
    line = '{"exec": "a", "attempt": 1, "node": "w2", "worker_id": "w"}{"exec": "b", "attempt": 1, "node": "w2", "worker_id": "w"}'
    assert [e["id"] for e in parse_execs(line)] == ["a", "b"]
    assert [e["id"] for e in parse_execs('{"exec": "a"' + line)] == ["a", "b"]


def test_log_tail_reads_only_new_lines_and_waits_for_whole_lines(tmp_path):
    log = tmp_path / "worker1.log"
    log.write_text('{"exec": "old", "attempt": 1, "node": "w1", "worker_id": "a"}\n')
    h = History()
    tail = LogTail(tmp_path, h, every=0.05)
    with open(log, "a") as fh:
        fh.write('{"exec": "new", "attempt": 1, "node": "w1", "worker_id": "a"}\n{"exec": "half"')
    tail._scan()
    assert [e["id"] for e in h.of("exec")] == ["new"]
    with open(log, "a") as fh:
        fh.write(', "attempt": 1, "node": "w1", "worker_id": "a"}\n')
    (tmp_path / "java1.log").write_text('{"exec":"j","attempt":1,"node":"w3","worker_id":"w3-java"}\n')
    tail._scan()
    assert sorted(e["id"] for e in h.of("exec")) == ["half", "j", "new"]


def test_history_mirrors_to_jsonl(tmp_path):
    h = History(tmp_path / "h.jsonl")
    h.add("mark", what="x")
    h.add("exec", t=5.0, id="a")
    h.close()
    back = load(tmp_path / "h.jsonl")
    assert [e["type"] for e in back] == ["mark", "exec"] and back[1]["t"] == 5.0


def test_jobs_are_tagged_with_their_run_and_operation():
    assert op_of_tags(["drill-x", "op-12"], "drill-x") == 12
    assert op_of_tags(["drill-y", "op-12"], "drill-x") is None
    assert op_of_tags(["drill-x"], "drill-x") is None

    class T:
        gateways = []
        token = "t"
    w = Workload(T(), History(), WorkloadConfig(), "drill-x")
    b = w.body(3, JobKind("sleep", {"seconds": 1}, queue="java"))
    assert b["tags"] == ["drill-x", "op-3"] and b["queue"] == "java" and b["max_attempts"] == 5
    assert "queue" not in w.body(4, JobKind("noop"))   # routed by capability


def test_the_catalogue_is_complete_and_names_its_needs():
    assert set(ORDER) == set(CATALOGUE)
    for name in ("leader-kill", "leader-isolate", "leader-pause", "rabbit-node-kill", "rabbit-partition",
                 "worker-power-cut-python", "worker-power-cut-java", "gateway-kill", "full-outage", "rolling-restart"):
        assert name in CATALOGUE and CATALOGUE[name].verifies
    local = {CRASH, STOP, PAUSE}
    assert {n for n, d in CATALOGUE.items() if d.needs <= local} == {
        "leader-kill", "leader-pause", "worker-power-cut-python", "worker-power-cut-java", "gateway-kill",
        "full-outage", "rolling-restart"}


def test_report_table_and_timeline_series():
    h = [{"t": 100.0, "type": "mark", "what": "load-start"},
         {"t": 100.5, "type": "submit", "op": 0, "outcome": "accepted", "id": "a", "t_end": 100.6},
         {"t": 101.2, "type": "submit", "op": 1, "outcome": "told", "code": 503},
         {"t": 102.0, "type": "fault", "event": "inject", "fault_id": 1, "label": "kill"},
         {"t": 103.0, "type": "state", "id": "a", "phase": "succeeded"},
         {"t": 104.0, "type": "fault", "event": "heal", "fault_id": 1}]
    s = series(h)
    assert s["accepted"] == {0: 1} and s["told"] == {1: 1} and s["completed"] == {3: 1}
    assert s["faults"] == [{"label": "kill", "inject": 2.0, "heal": 4.0}]
    assert s["e2e_latency"] == [(3.0, 2.5)]
    from drills.checker import check
    r = DrillResult("leader-kill", "passed", verdict=check(h + [{"t": 110.0, "type": "mark", "what": "deadline"}]))
    md = table([r, DrillResult("leader-isolate", "unsupported", reason="no partitions")])
    assert "| leader-kill | **FAILED** |" not in md and "| leader-kill | passed | 1 | 1 | 0 |" in md
    assert "unsupported: no partitions" in md


def test_journal_entries_are_parsed_stamped_and_deduplicated_by_cursor():
    import json as _json
    from drills.executions import JournalFollow
    h = History()
    jf = JournalFollow(["worker1"], lambda n: ["true"], h, since=0)
    line = '{"exec": "a", "attempt": 1, "node": "worker1", "worker_id": "worker1-py-1"}'
    entry = {"MESSAGE": line, "__REALTIME_TIMESTAMP": "1700000000500000", "__CURSOR": "s=1;i=5"}
    jf._take("worker1", _json.dumps(entry))
    jf._take("worker1", _json.dumps(entry))                     # again after a follower restart
    as_bytes = dict(entry, MESSAGE=list(line.replace('"a"', '"b"').encode()), __CURSOR="s=1;i=6")
    jf._take("worker1", _json.dumps(as_bytes))                  # journald's form for non-UTF-8 text
    jf._take("worker1", "not json")
    got = h.of("exec")
    assert [(e["id"], e["t"], e["src"]) for e in got] == [("a", 1700000000.5, "journal:worker1"),
                                                           ("b", 1700000000.5, "journal:worker1")]
    assert "--since @-1" in jf._cmd(False) and "-u 'taskforce-worker@*'" in jf._cmd(True)


def test_the_mixes_route_language_only_types_three_ways():
    from drills.catalogue import default_mix

    class T:
        def langs(self):
            return {"python", "java"}
    q = {m: {k.type: k.queue for k in default_mix(T(), m)} for m in ("routed", "explicit", "common")}
    assert q["routed"] == {"sleep": None, "noop": None, "py_info": None, "jvm_info": None}
    assert q["explicit"]["py_info"] == "python" and q["explicit"]["jvm_info"] == "java"
    assert q["common"] == {"sleep": None, "noop": None}
    lang = CATALOGUE["worker-power-cut-java"].mix(T(), "explicit")
    assert lang[0].queue == "java" and CATALOGUE["worker-power-cut-java"].mix(T(), "common")[0].queue is None
