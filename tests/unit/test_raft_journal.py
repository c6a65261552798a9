"""The journal fence (orchestrator/raft.py): pysyncobj's mmap journal is synced before an
entry counts toward a majority. Three real SyncObj nodes on loopback, no mocks."""
import socket
import time

from pysyncobj import SyncObjConf, SyncObjConsumer, replicated

from taskforce.orchestrator.raft import DurableJournal, DurableSyncObj


class Counter(SyncObjConsumer):
    def __init__(self):
        super().__init__()
        self.n = 0

    @replicated
    def bump(self):
        self.n += 1
        return self.n


def free_ports(k):
    socks = [socket.socket() for _ in range(k)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_every_member_syncs_its_journal_and_holds_the_committed_entry(tmp_path):
    addrs = [f"127.0.0.1:{p}" for p in free_ports(3)]
    nodes = []
    for i, me in enumerate(addrs):
        conf = SyncObjConf(password="unit-test", journalFile=str(tmp_path / f"j{i}.bin"),
                           fullDumpFile=str(tmp_path / f"d{i}.bin"), raftMinTimeout=0.3,
                           raftMaxTimeout=0.6, appendEntriesPeriod=0.05, autoTickPeriod=0.005)
        counter = Counter()
        nodes.append((DurableSyncObj(me, [a for a in addrs if a != me], conf, consumers=[counter]), counter))
    try:
        leader = None
        deadline = time.monotonic() + 20
        while leader is None and time.monotonic() < deadline:
            leader = next((n for n, _ in nodes if n._isLeader()), None)
            time.sleep(0.05)
        assert leader is not None, "no leader in 20 s"
        counter = next(c for n, c in nodes if n is leader)
        assert counter.bump(sync=True, timeout=10) == 1
        deadline = time.monotonic() + 10
        while any(c.n < 1 for _, c in nodes) and time.monotonic() < deadline:
            time.sleep(0.05)
        for node, c in nodes:
            journal = node._SyncObj__raftLog
            assert isinstance(journal, DurableJournal)
            assert c.n == 1
            # Appended entries were synced at least once on every member.
            assert journal.syncs >= 1
            # Every Raft message went through the commit-index fence.
            assert node.fenced_messages > 0
    finally:
        for node, _ in nodes:
            node.destroy()


def test_a_message_whose_log_match_was_not_checked_carries_no_commit_index():
    from taskforce.orchestrator.raft import without_unchecked_commit
    snapshot = {"type": "append_entries", "term": 7, "commit_index": 500, "serialized": None}
    assert without_unchecked_commit(snapshot)["commit_index"] == 0
    assert snapshot["commit_index"] == 500          # the caller's message is not changed
    regular = {"type": "append_entries", "term": 7, "commit_index": 500, "entries": [],
               "prevLogIdx": 499, "prevLogTerm": 7}
    assert without_unchecked_commit(regular) is regular
    vote = {"type": "request_vote", "term": 8}
    assert without_unchecked_commit(vote) is vote


def test_the_schedule_compacts_in_a_child_and_a_restarted_member_reads_it_back(tmp_path):
    """The production configuration (raft_conf): compaction forks, the dump lands on disk, and a
    member started again on the same data directory has the schedule back."""
    from taskforce.config import RaftConfig
    from taskforce.orchestrator.raft import make_node

    me = f"127.0.0.1:{free_ports(1)[0]}"
    cfg = RaftConfig(self=me, peers=[], password="unit-test-pw", data_dir=str(tmp_path),
                     internal_token="unit-test-token")
    node, state = make_node(cfg)
    try:
        deadline = time.monotonic() + 20
        while not node._isLeader() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state.begin_epoch(1, me, sync=True, timeout=10) == 1
        node.forceLogCompaction()
        dump = tmp_path / "dump.bin"
        while not dump.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert dump.exists()
    finally:
        node.destroy()
    time.sleep(0.3)
    node, state = make_node(cfg)
    try:
        deadline = time.monotonic() + 20
        while state.s.epoch != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state.s.epoch == 1
    finally:
        node.destroy()


def _log(first: int, last: int, term: int) -> list:
    return [(b"c%d" % i, i, term) for i in range(first, last + 1)]


def _append(prev: int, prev_term: int, term: int, entries: list) -> dict:
    return {"type": "append_entries", "term": term, "commit_index": prev, "entries": entries,
            "prevLogIdx": prev, "prevLogTerm": prev_term}


def _from(log: list):
    return lambda i: [e for e in log if e[1] >= i]


def test_a_resend_inside_a_followers_log_of_the_same_term_deletes_nothing():
    from taskforce.orchestrator.raft import without_needless_truncation
    log = _log(1, 20, 3)
    resend = _append(10, 3, 3, _log(11, 14, 3))
    out = without_needless_truncation(resend, 20, _from(log))
    assert (out["prevLogIdx"], out["prevLogTerm"], out["entries"]) == (20, 3, [])
    assert resend["prevLogIdx"] == 10 and len(resend["entries"]) == 4   # the caller's message is not changed
    heartbeat = _append(12, 3, 3, [])
    assert without_needless_truncation(heartbeat, 20, _from(log))["prevLogIdx"] == 20


def test_messages_that_reach_past_the_followers_log_are_left_alone():
    from taskforce.orchestrator.raft import without_needless_truncation
    log = _log(1, 20, 3)
    longer = _append(10, 3, 3, _log(11, 25, 3))
    assert without_needless_truncation(longer, 20, _from(log)) is longer
    at_end = _append(20, 3, 3, [])
    assert without_needless_truncation(at_end, 20, _from(log)) is at_end


def test_a_tail_of_another_term_or_a_mismatch_is_left_to_pysyncobj():
    from taskforce.orchestrator.raft import without_needless_truncation
    # entries 16-20 came from a deposed leader of term 2: only the leader of term 3 can say what replaces them
    log = _log(1, 15, 3) + _log(16, 20, 2)
    msg = _append(10, 3, 3, _log(11, 12, 3))
    assert without_needless_truncation(msg, 20, _from(log)) is msg
    # no match at prevLogIdx: pysyncobj refuses and the leader goes back
    log = _log(1, 20, 3)
    msg = _append(10, 2, 4, [])
    assert without_needless_truncation(msg, 20, _from(log)) is msg
    # a newer leader (term 4) resending entries of term 3 while ours beyond are of term 3: left alone
    msg = _append(10, 3, 4, _log(11, 12, 3))
    assert without_needless_truncation(msg, 20, _from(log)) is msg
    # snapshots and split transmissions are not regular appends
    for other in ({"type": "append_entries", "term": 3, "commit_index": 0, "serialized": b"x"},
                  dict(_append(10, 3, 3, []), transmission="start", data=b"x"),
                  {"type": "request_vote", "term": 5}):
        assert without_needless_truncation(other, 20, _from(log)) is other
