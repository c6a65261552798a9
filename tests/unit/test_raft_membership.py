"""Raft membership changes (orchestrator/membership.py, the raft-member CLI): the checks before
and after a change, one change at a time, and what pysyncobj itself does with a change that
overlaps another or with a journal replayed against a changed config."""
import threading
import time

import pytest
from pysyncobj.syncobj import FAIL_REASON

from taskforce.cli import _api_urls, new_member_mismatch, pick_leader
from taskforce.orchestrator.membership import (Change, ChangeRefused, MembershipChanger, check_preconditions,
                                               config_drift, expected_members, parse_change, verify)

from .test_raft_journal import free_ports

A, B, C, D = "10.0.0.1:4321", "10.0.0.2:4321", "10.0.0.3:4321", "10.0.0.4:4321"


def status(me=A, others=(B, C), down=(), state="leader", quorum=True, match=None, commit=100):
    return {"self": me, "state": state, "leader": me if state == "leader" else B, "has_quorum": quorum,
            "term": 3, "commit_idx": commit, "members": sorted({me, *others}),
            "connected": {m: m not in down for m in others},
            "match_idx": {m: commit for m in others} if match is None else match}


def refused(fn, *args):
    with pytest.raises(ChangeRefused) as e:
        fn(*args)
    return e.value


# ---- the request -----------------------------------------------------------------------------
def test_a_change_names_one_address_to_add_or_remove():
    assert parse_change({"add": D}) == Change("add", D, 30.0)
    assert parse_change({"remove": "core-3.example:4321", "timeout_s": 5}) == Change("remove", "core-3.example:4321", 5.0)
    for body in (None, [], "add", {}, {"add": D, "remove": C}, {"add": D, "force": True},
                 {"add": D, "timeout_s": 0}, {"add": D, "timeout_s": "5"}, {"add": D, "timeout_s": True},
                 {"add": D, "timeout_s": 10_000}):
        assert refused(parse_change, body).code == 422, body


def test_an_address_is_host_and_port_as_in_raft_self():
    for bad in ("10.0.0.4", "10.0.0.4:", ":4321", "10.0.0.4:0", "10.0.0.4:65536", "http://10.0.0.4:4321",
                "10.0.0.4:4321 ", "a b:1", "-host:1", "[::1]:4321", 4321, None):
        e = refused(parse_change, {"add": bad})
        assert e.code == 422 and e.reason == "bad_request", bad
    assert parse_change({"add": "localhost:1"}).address == "localhost:1"


# ---- before the change ---------------------------------------------------------------------------
def test_only_a_leader_with_a_quorum_and_every_member_connected_changes():
    check_preconditions(status(), Change("add", D))
    e = refused(check_preconditions, status(state="follower"), Change("add", D))
    assert (e.code, e.reason, e.extra["leader"]) == (409, "not_leader", B) and B in e.detail
    assert refused(check_preconditions, status(quorum=False), Change("add", D)).reason == "no_quorum"
    e = refused(check_preconditions, status(down=(C,)), Change("add", D))
    assert (e.code, e.reason, e.extra["not_connected"]) == (409, "not_connected", [C])
    # Another member down: a removal too could leave no majority.
    assert refused(check_preconditions, status(others=(B, C, D), down=(C,)), Change("remove", D)).reason == "not_connected"


def test_the_member_being_removed_may_be_down():
    check_preconditions(status(others=(B, C, D), down=(D,)), Change("remove", D))


def test_adding_a_member_twice_removing_a_stranger_or_the_leader_is_refused():
    assert refused(check_preconditions, status(), Change("add", B)).reason == "is_member"
    assert refused(check_preconditions, status(), Change("remove", D)).reason == "not_member"
    e = refused(check_preconditions, status(), Change("remove", A))
    assert (e.code, e.reason) == (409, "is_leader") and "move leadership" in e.detail


def test_the_expected_members_after_a_change():
    assert expected_members([A, B, C], Change("add", D)) == [A, B, C, D]
    assert expected_members([A, B, C, D], Change("remove", B)) == [A, C, D]


# ---- after the change ----------------------------------------------------------------------------
def test_a_change_checks_out_when_the_leader_lists_exactly_the_expected_members_all_connected_and_caught_up():
    assert verify(status(others=(B, C, D)), [A, B, C, D], 100) == []
    assert "expected" in " ".join(verify(status(), [A, B, C, D], 100))
    assert "not connected: 10.0.0.4:4321" in verify(status(others=(B, C, D), down=(D,)), [A, B, C, D], 100)
    behind = verify(status(others=(B, C, D), match={B: 100, C: 100, D: 7}), [A, B, C, D], 100)
    assert behind == ["not caught up to index 100: 10.0.0.4:4321"]
    assert "no longer the leader" in " ".join(verify(status(state="follower", others=(B, C, D)), [A, B, C, D], 100))


def test_a_node_listed_twice_does_not_check_out():
    # pysyncobj once listed a node among its own partners after a journal replay (its #131)
    st = status(others=(B, C, D))
    st["members"] = [A, A, B, C, D]
    assert "listed twice" in " ".join(verify(st, [A, B, C, D], 100))


def test_config_drift_says_what_to_change():
    assert config_drift(A, [B, C, D], [A, B, C, D]) is None
    line = config_drift(A, [B, C], [A, B, C, D])
    assert "members but not configured: 10.0.0.4:4321" in line and "configured but not" not in line
    line = config_drift(A, [B, C, D], [A, B, C])
    assert "configured but not members: 10.0.0.4:4321" in line


# ---- one change at a time, with a stand-in for pysyncobj -----------------------------------------
class FakeNode:
    """Calls back from another thread, as pysyncobj does, once `release` is set."""

    def __init__(self, reply=FAIL_REASON.SUCCESS, pending=()):
        self.reply, self.pending = reply, list(pending)
        self.release = threading.Event()
        self.release.set()
        self.submitted = []
        self.raftCommitIndex = 100

    def uncommitted_membership(self):
        return self.pending

    def addNodeToCluster(self, addr, callback):
        self._submit("add", addr, callback)

    def removeNodeFromCluster(self, addr, callback):
        self._submit("remove", addr, callback)

    def _submit(self, op, addr, callback):
        self.submitted.append((op, addr))

        def later():
            self.release.wait(10)
            if self.reply is not None:
                callback(None, self.reply)
        threading.Thread(target=later, daemon=True).start()


def views(*sts):
    """A status function that walks through sts and then stays on the last."""
    it = iter(sts)
    last = {}

    def status():
        last["st"] = next(it, last.get("st"))
        return last["st"]
    return status


def test_a_change_is_submitted_once_and_answers_when_the_leader_sees_it_through():
    node = FakeNode()
    after = status(others=(B, C, D))
    ch = MembershipChanger(node, views(status(), status(others=(B, C, D), down=(D,)), after), poll_s=0.01)
    assert ch.change(Change("add", D, 5)) == after
    assert node.submitted == [("add", D)]


def test_a_second_change_while_one_is_in_progress_is_refused():
    node = FakeNode()
    node.release.clear()
    ch = MembershipChanger(node, views(status(), status(others=(B, C, D))), poll_s=0.01)
    first = threading.Thread(target=ch.change, args=(Change("add", D, 5),))
    first.start()
    deadline = time.monotonic() + 5
    while not node.submitted and time.monotonic() < deadline:
        time.sleep(0.01)
    e = refused(ch.change, Change("remove", C, 5))
    assert (e.code, e.reason) == (409, "pending") and f"add {D}" in e.detail
    node.release.set()
    first.join(5)
    assert node.submitted == [("add", D)]


def test_a_change_uncommitted_in_the_log_blocks_the_next():
    node = FakeNode(pending=[(57, "add", D)])
    e = refused(MembershipChanger(node, views(status())).change, Change("remove", C, 5))
    assert (e.code, e.reason) == (409, "pending") and f"add {D} at index 57" in e.detail
    assert node.submitted == []


def test_no_commit_in_time_is_a_timeout_and_so_is_a_view_that_never_checks_out():
    e = refused(MembershipChanger(FakeNode(reply=None), views(status())).change, Change("add", D, 0.2))
    assert (e.code, e.reason) == (504, "timeout") and "may still take effect" in e.detail
    stuck = status(others=(B, C, D), down=(D,))
    e = refused(MembershipChanger(FakeNode(), views(status(), stuck), poll_s=0.01).change, Change("add", D, 0.3))
    assert (e.code, e.reason) == (504, "unverified") and "not connected" in e.detail and e.extra["status"] == stuck


def test_pysyncobj_refusals_map_to_clear_answers():
    for reply, code, reason in ((FAIL_REASON.REQUEST_DENIED, 409, "denied"), (FAIL_REASON.QUEUE_FULL, 503, "busy"),
                                (FAIL_REASON.DISCARDED, 409, "leader_changed"),
                                (FAIL_REASON.NOT_LEADER, 409, "leader_changed")):
        e = refused(MembershipChanger(FakeNode(reply=reply), views(status())).change, Change("add", D, 2))
        assert (e.code, e.reason) == (code, reason), reply


# ---- the CLI's choices -------------------------------------------------------------------------------
def test_the_cli_looks_for_the_leader_on_every_members_host_at_this_nodes_api_port():
    from taskforce.config import RaftConfig
    raft = RaftConfig(self=A, peers=[B, C], password="unit-test-pw", internal_token="unit-test-token",
                      http_listen="10.0.0.1:7100")
    assert _api_urls(raft, None) == ["http://10.0.0.1:7100", "http://10.0.0.2:7100", "http://10.0.0.3:7100"]
    assert _api_urls(raft.model_copy(update={"http_listen": "0.0.0.0:7100"}), None)[0] == "http://127.0.0.1:7100"
    assert _api_urls(raft, "http://x:1/, http://y:2") == ["http://x:1", "http://y:2"]


def test_the_cli_fails_with_one_line_when_no_leader_answers(tmp_path, capsys):
    from taskforce.cli import main
    raft_port, api_port = free_ports(2)
    cfg = tmp_path / "orchestrator.toml"
    cfg.write_text('[amqp]\nuser = "orchestrator"\npassword = "pw"\n[raft]\n'
                   f'self = "127.0.0.1:{raft_port}"\npassword = "unit-test-pw"\n'
                   f'http_listen = "127.0.0.1:{api_port}"\ninternal_token = "unit-test-token"\n')
    assert main(["raft-member", "add", D, "--config", str(cfg)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"taskforce raft-member add {D}: no orchestrator that leads")
    assert main(["raft-member", "remove", "--config", str(cfg)]) == 1
    assert "HOST:PORT" in capsys.readouterr().err


def test_the_cli_takes_the_leader_with_a_quorum_and_the_highest_term():
    old = dict(status(), term=2)
    new = dict(status(me=B, others=(A, C)), term=4)
    follower = status(me=C, others=(A, B), state="follower")
    assert pick_leader({"u1": old, "u2": new, "u3": follower, "u4": None})[0] == "u2"
    assert pick_leader({"u1": dict(new, has_quorum=False), "u3": follower}) is None


def test_the_cli_refuses_to_add_a_node_whose_peers_are_not_the_current_members():
    leader = status()
    good = status(me=D, others=(A, B, C), state="follower")
    assert new_member_mismatch(D, leader, {"u1": leader, "u4": good}) is None
    assert new_member_mismatch(D, leader, {"u1": leader}) is None          # not seen: nothing to compare
    wrong = status(me=D, others=(A, B), state="follower")
    assert "set its [raft] peers" in new_member_mismatch(D, leader, {"u1": leader, "u4": wrong})


# ---- real pysyncobj ------------------------------------------------------------------------------------
def single_node(tmp_path, me, peers=(), leader_fallback_s=60.0):
    from taskforce.config import RaftConfig
    from taskforce.orchestrator.raft import make_node
    from taskforce.orchestrator.service import raft_status
    cfg = RaftConfig(self=me, peers=list(peers), password="unit-test-pw", data_dir=str(tmp_path),
                     internal_token="unit-test-token", leader_fallback_s=leader_fallback_s)
    node, state = make_node(cfg)
    return node, (lambda: raft_status(node, state))


def wait(pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_pysyncobj_takes_an_overlapping_change_and_a_restart_that_would_miss_it_is_refused(tmp_path):
    """A one-node group adds a node that never comes: the change cannot commit (it needs both),
    so it stays in the log, in effect. pysyncobj's own guard lets a second change in (ours,
    the log scan, is what refuses it in a running group). Restarted, pysyncobj would not apply
    either change and would lead alone again; the start is refused unless the config has them."""
    from taskforce.config import ConfigError
    me, gone, other = (f"127.0.0.1:{p}" for p in free_ports(3))
    node, st = single_node(tmp_path, me)
    try:
        wait(lambda: st()["state"] == "leader")
        e = refused(MembershipChanger(node, st).change, Change("add", gone, 1.0))
        assert e.reason == "timeout"
        assert [(kind, a) for _, kind, a in node.uncommitted_membership()] == [("add", gone)]
        view = st()
        assert view["members"] == sorted([me, gone]) and not view["has_quorum"]   # in effect, uncommitted
        node.addNodeToCluster(other)
        wait(lambda: len(node.uncommitted_membership()) == 2, 5)
        time.sleep(1.2)   # pysyncobj saves the commit index once a second: it stays below both
    finally:
        node.destroy()
    time.sleep(0.3)
    with pytest.raises(ConfigError) as e:
        single_node(tmp_path, me)
    assert f"add {gone}" in str(e.value) and f"add {other}" in str(e.value)
    node, st = single_node(tmp_path, me, peers=[gone, other])
    node.destroy()


def test_a_node_waiting_to_join_calls_no_election_and_a_restart_replays_the_journals_membership(tmp_path):
    """A one-node group; a second node is started with the first as its peer and waits,
    dialling it every few seconds (its address is the higher, so it dials) and being dropped:
    it raises no term, so adding it deposes nobody. Then both stop and the first is restarted
    with a config that lists the second (updated) and with one that does not (stale). Either
    way the journal's add holds, once, and a stale config shows up as drift."""
    a, b = sorted(f"127.0.0.1:{p}" for p in free_ports(2))
    node_a, st_a = single_node(tmp_path / "a", a)
    node_b = None
    try:
        wait(lambda: st_a()["state"] == "leader")
        term = st_a()["term"]
        node_b, st_b = single_node(tmp_path / "b", b, peers=[a])
        time.sleep(3.5)   # past its first redials (raft_conf's connectionRetryTime is 1 s)
        assert st_b()["term"] == 0 and st_b()["leader"] is None
        res = MembershipChanger(node_a, st_a).change(Change("add", b, 20))
        assert res["members"] == sorted([a, b]) and res["connected"] == {b: True}
        wait(lambda: st_b()["leader"] == a)
        assert st_a()["term"] == term and st_a()["state"] == "leader"
        commit = st_a()["commit_idx"]
        time.sleep(1.2)   # pysyncobj saves the commit index once a second
    finally:
        node_a.destroy()
        if node_b is not None:
            node_b.destroy()
    for peers in ([b], []):
        time.sleep(0.3)
        node_a, st_a = single_node(tmp_path / "a", a, peers=peers)
        try:
            view = wait(lambda: st_a()["last_applied"] >= commit and st_a())
            assert view["members"] == sorted([a, b]), peers
            assert (config_drift(a, peers, view["members"]) is None) == (peers == [b])
        finally:
            node_a.destroy()
