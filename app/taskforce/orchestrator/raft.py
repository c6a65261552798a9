"""The Schedule, replicated by pysyncobj.

pysyncobj's wire format is pickle, so the Raft port is remote code execution for anyone
who can reach it without the password: a password is mandatory here, and the roles
firewall the port to the orchestrator peers.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any

from pysyncobj import SyncObj, SyncObjConf, SyncObjConsumer, replicated
from pysyncobj import pickle as _pickle
from pysyncobj import syncobj as _syncobj_module
from pysyncobj.journal import FileJournal

from ..config import ConfigError, RaftConfig
from .schedule import Schedule


class ReplicatedSchedule(SyncObjConsumer):
    """Replicated entry points into Schedule. pysyncobj applies them on its own thread; the
    lock lets the leader's AMQP thread and the HTTP readers see a consistent state."""

    def __init__(self, cfg: RaftConfig) -> None:
        super().__init__()
        self.lock = threading.RLock()
        self.s = Schedule(cfg.backoff_base_s, cfg.backoff_max_s, cfg.retention_s, cfg.max_retained)

    # pysyncobj pickles every attribute added after __init__ of the base; the lock cannot be.
    def _serialize(self):
        with self.lock:
            return {"s": self.s}

    def _deserialize(self, data):
        with self.lock:
            self.s = data["s"]

    @replicated
    def begin_epoch(self, epoch: int, leader: str) -> Any:
        with self.lock:
            return self.s.begin_epoch(epoch, leader)

    @replicated
    def apply(self, epoch: int, now: float, commands: list, events: list) -> Any:
        with self.lock:
            return self.s.apply(epoch, now, commands, events)

    @replicated
    def tick(self, epoch: int, now: float, expired: list) -> Any:
        with self.lock:
            return self.s.tick(epoch, now, expired)

    @replicated
    def outbox_ack(self, epoch: int, upto: int) -> Any:
        with self.lock:
            return self.s.outbox_ack(epoch, upto)


class DurableJournal(FileJournal):
    """pysyncobj writes its journal into an mmap and msyncs it only at shutdown. A crashed
    process keeps those pages (the page cache survives it); a power loss of a majority does
    not, and entries the cluster had committed could vanish. This journal remembers that it
    holds unsynced entries, and DurableSyncObj syncs it before they can count."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.dirty = False
        self.syncs = 0

    def add(self, command, idx, term):
        super().add(command, idx, term)
        self.dirty = True

    def deleteEntriesFrom(self, entryFrom):
        super().deleteEntriesFrom(entryFrom)
        self.dirty = True

    def sync(self) -> None:
        if self.dirty:
            self.flush()
            self.dirty = False
            self.syncs += 1


def _journal(path):
    return DurableJournal(path) if path else _create_journal(path)


_create_journal = _syncobj_module.createJournal
# SyncObj builds its journal through this module-level name; one process runs one SyncObj.
_syncobj_module.createJournal = _journal


class DurableSyncObj(SyncObj):
    """Syncs the journal at the two points where an entry starts to count toward a majority:
    a follower, before it tells the leader it holds the entries; the leader, at the start of
    each tick, before it advances the commit index (it counts its own copy). One msync per
    message or tick, not per entry. Both hooks run on pysyncobj's own thread, the only one
    that touches the journal.

    It also calls no election it cannot win (see _SyncObj__connectedToAnyone)."""

    # How long a connection must have lasted to count toward an election.
    STEADY_CONNECTION_S = 0.5

    def __init__(self, *args, **kwargs) -> None:
        # Set before SyncObj.__init__, which starts the transport and then takes every
        # attribute set later for replicated state, pickled into its dumps.
        self._connected_since: dict = {}
        super().__init__(*args, **kwargs)

    def _journal_sync(self) -> None:
        log = self._SyncObj__raftLog
        if isinstance(log, DurableJournal):
            log.sync()

    def _SyncObj__sendNextNodeIdx(self, node, reset=False, nextNodeIdx=None, success=False):
        if success:
            self._journal_sync()
        return super()._SyncObj__sendNextNodeIdx(node, reset=reset, nextNodeIdx=nextNodeIdx, success=success)

    def _onTick(self, timeToWait=0.0):
        self._journal_sync()
        return super()._onTick(timeToWait)

    fenced_messages = 0

    def _SyncObj__onNodeConnected(self, node):
        self._connected_since[node] = time.monotonic()
        return super()._SyncObj__onNodeConnected(node)

    def _SyncObj__onNodeDisconnected(self, node):
        self._connected_since.pop(node, None)
        return super()._SyncObj__onNodeDisconnected(node)

    def _SyncObj__connectedToAnyone(self):
        """pysyncobj calls an election once connected to anyone, and raises its term for it.
        A node started to join a group but not added yet is connected to a member for an
        instant each time it dials one (the member drops it on hearing its address), so it
        raised its term every few seconds, and once added deposed the leader with it. Here an
        election needs a majority of the group (this node included) connected for a while:
        no fewer can elect anyway."""
        others = self.otherNodes
        now = time.monotonic()
        steady = sum(1 for n in others if self.isNodeConnected(n)
                     and now - self._connected_since.get(n, now) >= self.STEADY_CONNECTION_S)
        return steady + 1 > (len(others) + 1) / 2

    def on_raft_thread(self, fn, timeout: float = 5.0) -> Any:
        """Run fn() on pysyncobj's own thread, between two ticks, and return what it returns:
        the log and the membership are that thread's alone."""
        done = threading.Event()
        box: dict = {}

        def once():
            if done.is_set():
                return
            try:
                box["value"] = fn()
            except Exception as e:  # handed back to the caller's thread
                box["error"] = e
            done.set()

        self.addOnTickCallback(once)
        try:
            if not done.wait(timeout):
                raise TimeoutError(f"the Raft thread did not run a call within {timeout:.0f}s")
        finally:
            self.removeOnTickCallback(once)
        if "error" in box:
            raise box["error"]
        return box["value"]

    def uncommitted_membership(self, timeout: float = 5.0) -> list[tuple[int, str, str]]:
        """Membership changes in this node's log above its commit index, as (index, "add" or
        "rem", "host:port"). pysyncobj means to refuse a change while another is uncommitted,
        but the index it checks (__changeClusterIDx) is never set, so it never refuses."""
        def scan():
            out = []
            for command, idx, _term in self._SyncObj__getEntries(self.raftCommitIndex + 1):
                req = self._SyncObj__parseChangeClusterRequest(command)
                if req is not None:
                    out.append((idx, str(req[0]), str(req[1])))
            return out
        return self.on_raft_thread(scan, timeout)

    def _SyncObj__onMessageReceived(self, node, message):
        self.fenced_messages += 1
        message = without_unchecked_commit(message)
        message = without_needless_truncation(message, self._SyncObj__getCurrentLogIndex(), self._SyncObj__getEntries)
        return super()._SyncObj__onMessageReceived(node, message)


def without_unchecked_commit(message: Any) -> Any:
    """pysyncobj's follower raises its commit index to min(leader's commit index, its own last
    index) on every append_entries, including the snapshot messages that carry no
    prevLogIdx, where nothing has checked that its log matches the leader's. A follower that
    lags behind a compacted leader, and still holds a deposed leader's uncommitted entries,
    then applies them, and pysyncobj later truncates them ("truncating already-applied log
    entries ... state machine may have diverged"; seen on the lab in leader-pause). Such a
    message keeps its snapshot but loses its commit index; the next regular append_entries,
    whose prevLogIdx check does match the logs, advances it."""
    if (isinstance(message, dict) and message.get("type") == "append_entries"
            and "prevLogIdx" not in message and message.get("commit_index")):
        message = dict(message, commit_index=0)
    return message


def without_needless_truncation(message: Any, last_index: int, entries_from) -> Any:
    """pysyncobj's follower deletes every entry after an append_entries' prevLogIdx before it
    appends the message's entries, conflict or not. A leader that resends from an older index
    (after a reset, a reconnect, a lost reply) thus makes a follower drop entries it has already
    acknowledged, and the leader may have counted them toward a commit: for a while a
    committed entry is on fewer members than a majority ("truncating already-applied log
    entries", seen on followers of the lab under load, several times a minute). Raft deletes
    only from the first conflict.

    Here, when the follower holds more than the message covers, the message matches at
    prevLogIdx, and every entry after it has the message's own term (so it came from this
    leader, whose log holds it at that index: one leader per term, and a leader never
    truncates its own log), the message becomes a heartbeat at the follower's last entry:
    nothing is deleted, and the follower answers with its true next index. A tail from any
    other term is left to pysyncobj: only the leader can say what replaces it.
    entries_from(i) gives this node's entries from index i on, as (command, index, term)."""
    if (not isinstance(message, dict) or message.get("type") != "append_entries"
            or "prevLogIdx" not in message or "transmission" in message):
        return message
    entries = message.get("entries") or []
    prev = message["prevLogIdx"]
    covered = entries[-1][1] if entries else prev
    if last_index <= covered:
        return message   # the common case: nothing of ours lies beyond the message
    tail = entries_from(prev)
    if not tail or tail[0][1] != prev or tail[0][2] != message.get("prevLogTerm"):
        return message   # no match at prevLogIdx: pysyncobj asks the leader to go back
    term = message.get("term")
    beyond = tail[1:]
    if not beyond or any(e[2] != term for e in beyond) or any(e[2] != term for e in entries):
        return message
    last = beyond[-1]
    return dict(message, prevLogIdx=last[1], prevLogTerm=last[2], entries=[])


def journal_path(cfg: RaftConfig) -> str:
    return os.path.join(cfg.data_dir, "journal.bin")


def raft_conf(cfg: RaftConfig) -> SyncObjConf:
    os.makedirs(cfg.data_dir, exist_ok=True)
    return SyncObjConf(
        password=cfg.password,
        journalFile=journal_path(cfg),
        fullDumpFile=os.path.join(cfg.data_dir, "dump.bin"),
        # The 30 s default lets a leader that lost its majority act for half a minute.
        leaderFallbackTimeout=cfg.leader_fallback_s,
        dynamicMembershipChange=True,
        autoTickPeriod=0.005,
        appendEntriesPeriod=0.05,
        # Wide enough that a starved CPU or a rejoining follower does not depose a healthy
        # leader (pysyncobj has no pre-vote); each spurious election costs a failover.
        raftMinTimeout=1.5,
        raftMaxTimeout=3.0,
        connectionTimeout=3.5,
        # pysyncobj's 5 s default: a follower restarted while the leader waited to redial it
        # (the side with the higher address dials) heard no leader within its election
        # timeout and, connected to the others, deposed it. Redialling within a second is
        # well inside raftMinTimeout.
        connectionRetryTime=1.0,
        logCompactionMinEntries=20000,
        logCompactionMinTime=60,
        # Compaction pickles and gzips the whole schedule. Without a fork it runs on the Raft
        # thread, which then sends no heartbeats for seconds on a big state: on the lab that
        # deposed healthy leaders and stalled commits. The forked child shares the parent's
        # pages copy-on-write and exits when the dump is written.
        useFork=True,
    )


_MEMBERSHIP = _syncobj_module._COMMAND_TYPE.MEMBERSHIP


def membership_above_commit(path: str) -> list[tuple[int, str, str]]:
    """The membership changes a journal holds above the commit index it saved, as (index,
    "add" or "rem", "host:port"). pysyncobj replays only up to that index at start, and saves
    it once a second, so these are the changes a restart does not apply until the leader
    commits them again."""
    if not os.path.exists(path):
        return []
    journal = FileJournal(path)
    try:
        commit = journal.getRaftCommitIndex()
        out = []
        for i in range(len(journal)):
            command, idx, _term = journal[i]
            if idx > commit and command[:1] == bytes([_MEMBERSHIP]):
                req = _pickle.loads(command[1:])
                out.append((idx, str(req[0]), str(req[1])))
        return out
    finally:
        journal._destroy()


def check_membership_on_start(cfg: RaftConfig) -> None:
    """Refuse to start a member whose config leaves out a membership change that its journal
    holds but has not applied. pysyncobj would start with the configured group and count votes
    over it until the leader commits the change again: a member restarted with its old config
    right after the group grew could elect itself in a group too small (with no peers, alone)."""
    configured = set(cfg.peers) | {cfg.self}
    members = set(configured)
    path = journal_path(cfg)
    ahead = membership_above_commit(path)
    for _idx, kind, addr in ahead:
        (members.add if kind == "add" else members.discard)(addr)
    if members != configured:
        changes = ", ".join(f"{kind} {addr} at index {idx}" for idx, kind, addr in ahead)
        if cfg.self not in members:
            raise ConfigError(f"the journal {path} removes this node from the Raft group ({changes}): wipe "
                              "raft.data_dir before it starts again (it then rejoins empty if it is still a member; "
                              "otherwise add it again)")
        raise ConfigError(f"the journal {path} holds membership changes not applied yet ({changes}): "
                          f"set [raft] peers to {sorted(members - {cfg.self})} and start again")


def make_node(cfg: RaftConfig) -> tuple[SyncObj, ReplicatedSchedule]:
    check_membership_on_start(cfg)
    state = ReplicatedSchedule(cfg)
    node = DurableSyncObj(cfg.self, list(cfg.peers), raft_conf(cfg), consumers=[state])
    return node, state
