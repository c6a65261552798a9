"""The day-2 playbooks keep the order the runbook promises, the production inventory ships no
password, and the operation helpers' pure parts count what they say they count."""
from pathlib import Path

import yaml

from drills.throughput import event_job_id, parse_sse
from drills.under_load import submit_error_rate

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
PROD = REPO / "inventories" / "production.example"


def plays(name: str) -> list[dict]:
    return yaml.safe_load((PLAYBOOKS / name).read_text())


def test_upgrade_rolls_brokers_then_followers_then_the_leader_then_gateways_then_workers():
    order = [p.get("hosts") for p in plays("upgrade.yml") if "hosts" in p]
    want = ["rabbitmq", "upgrade_orchestrators_followers", "upgrade_orchestrators_leader", "gateways",
            "workers_python:workers_java"]
    assert [h for h in order if h in want] == want


def test_every_rolling_play_takes_one_node_at_a_time():
    rolling = [p for p in plays("upgrade.yml") if p.get("hosts") in
               ("rabbitmq", "upgrade_orchestrators_followers", "upgrade_orchestrators_leader", "gateways",
                "workers_python:workers_java")]
    assert rolling and all(p.get("serial") == 1 for p in rolling)


def test_the_broker_is_drained_only_behind_the_quorum_gate_and_revived_after():
    rabbit = next(p for p in plays("upgrade.yml") if p.get("hosts") == "rabbitmq")
    block = next(t for t in rabbit["tasks"] if "block" in t)["block"]
    cmds = [t.get("ansible.builtin.command", "") for t in block]
    i_gate = next(i for i, c in enumerate(cmds) if "check_if_node_is_quorum_critical" in c)
    i_drain = next(i for i, c in enumerate(cmds) if "rabbitmq-upgrade drain" in c)
    i_revive = next(i for i, c in enumerate(cmds) if "rabbitmq-upgrade revive" in c)
    assert i_gate < i_drain < i_revive


def test_stop_goes_workers_gateways_orchestrators_leader_last_then_brokers():
    order = [p["hosts"] for p in plays("stop.yml")]
    assert order.index("workers_python:workers_java") < order.index("gateways") \
        < order.index("stop_orchestrators_followers") < order.index("stop_orchestrators_leader") \
        < order.index("rabbitmq")


def test_start_goes_brokers_orchestrators_gateways_workers():
    order = [p.get("hosts") for p in plays("start.yml") if "hosts" in p]
    assert order == ["rabbitmq", "orchestrators", "gateways", "workers_python:workers_java"]


def test_teardown_refuses_without_the_confirmation():
    first = plays("teardown.yml")[0]
    assert first["hosts"] == "all" and first["any_errors_fatal"], "a localhost play would be skipped by --limit"
    assert "teardown_confirm" in str(first["tasks"][0]["ansible.builtin.assert"]["that"])


def test_the_production_example_has_no_password_and_a_file_per_concern():
    vault = yaml.safe_load((PROD / "group_vars" / "all" / "vault.yml.example").read_text())["taskforce_secrets"]

    def leaves(d):
        for v in d.values():
            yield from (leaves(v) if isinstance(v, dict) else [v])
    assert all(v == "" for v in leaves(vault)), "an example secret would be a default password"
    assert {"erlang_cookie", "amqp_passwords", "raft_password", "internal_token", "api_tokens"} <= set(vault)
    groups = set(yaml.safe_load((PROD / "hosts.yml").read_text())["all"]["children"])
    assert groups <= {p.name for p in (PROD / "group_vars").iterdir()}
    assert (PROD / "README.md").exists()
    assert not (PROD / "group_vars" / "all" / "vault.yml").exists()


def test_submit_error_rate_counts_only_the_window_and_every_non_202():
    h = [{"type": "submit", "t": 1, "outcome": "accepted"},
         {"type": "submit", "t": 5, "outcome": "told"},
         {"type": "submit", "t": 6, "outcome": "dropped"},
         {"type": "submit", "t": 7, "outcome": "accepted"},
         {"type": "submit", "t": 8, "outcome": "rejected"},
         {"type": "op", "t": 6},
         {"type": "submit", "t": 20, "outcome": "told"}]
    r = submit_error_rate(h, 5, 10)
    assert r["tries"] == 4 and r["not_accepted"] == 3 and r["rate"] == 0.75
    assert r["by_outcome"] == {"told": 1, "dropped": 1, "rejected": 1}
    assert submit_error_rate([], 0, 1)["rate"] == 0.0


def test_sse_frames_parse_into_events_and_job_ids():
    lines = ["retry: 2000", "", "id: 7", "event: job", 'data: {"seq":7,"phase":"succeeded","record":{"id":"j1"}}',
             "", ": keepalive", "", "event: close", "data: {}", ""]
    evs = list(parse_sse(iter(lines)))
    assert [n for n, _ in evs] == ["job", "close"]
    assert event_job_id(evs[0][1])[0] == "j1"
