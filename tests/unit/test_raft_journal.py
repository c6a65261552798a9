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
    finally:
        for node, _ in nodes:
            node.destroy()
