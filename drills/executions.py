"""Execution records: every run of a demo handler prints one line
`{"exec": job_id, "attempt": n, "node": ..., "worker_id": ...}`. These readers turn those lines
into `exec` entries of the history, stamped with when the line was written (the journal's own
timestamp) or, for plain log files, when it was read (within a fraction of a second).

Both follow the source live, because a node that loses power may take its last lines with it.
"""
from __future__ import annotations

import json
import shlex
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Optional

EXEC_MARK = '{"exec"'
JOURNAL_UNITS = ("taskforce-worker@*", "taskforce-worker-java")


_DECODER = json.JSONDecoder()


def parse_execs(line: str) -> list[dict]:
    """Every execution record in a line. Handler processes share one stdout, and a record
    written in two pieces (text, then newline) can land beside another one on the same line:
    `{"exec": "a", ...}{"exec": "b", ...}`."""
    out = []
    i = line.find(EXEC_MARK)
    while i >= 0:
        try:
            d, end = _DECODER.raw_decode(line, i)
        except ValueError:
            end = i + len(EXEC_MARK)
            d = None
        if isinstance(d, dict) and isinstance(d.get("exec"), str):
            out.append({"id": d["exec"], "attempt": d.get("attempt"), "node": d.get("node"),
                        "worker_id": d.get("worker_id")})
        i = line.find(EXEC_MARK, end)
    return out


def parse_exec(line: str) -> Optional[dict]:
    found = parse_execs(line)
    return found[0] if found else None


class LogTail:
    """Follows every *.log in a directory (the dev cluster's logs), from their current ends."""

    def __init__(self, logdir: Path, history, every: float = 0.25) -> None:
        self.logdir, self.history, self.every = logdir, history, every
        self.offsets: dict[Path, int] = {p: p.stat().st_size for p in logdir.glob("*.log")}
        self.partial: dict[Path, str] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, name="exec-tail", daemon=True)

    def start(self) -> "LogTail":
        self._t.start()
        return self

    def _scan(self) -> None:
        now = time.time()
        for p in sorted(self.logdir.glob("*.log")):
            off = self.offsets.get(p, 0)
            try:
                size = p.stat().st_size
                if size < off:
                    off = 0
                if size == off:
                    continue
                with open(p, "rb") as fh:
                    fh.seek(off)
                    data = fh.read(size - off)
            except OSError:
                continue
            self.offsets[p] = off + len(data)
            text = self.partial.pop(p, "") + data.decode(errors="replace")
            lines = text.split("\n")
            if lines[-1]:
                self.partial[p] = lines[-1]
            for line in lines[:-1]:
                for e in parse_execs(line):
                    self.history.add("exec", t=now, src=p.stem, **e)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._scan()
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._t.join(5)
        self._scan()


class JournalFollow:
    """`journalctl -f -o json` over SSH on each worker node, restarted whenever the node comes
    back; entries are de-duplicated by journal cursor, so overlaps after a restart are harmless."""

    def __init__(self, nodes: list[str], ssh_argv: Callable[[str], list[str]], history, since: float) -> None:
        self.nodes, self.ssh_argv, self.history, self.since = nodes, ssh_argv, history, since
        self.seen: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._procs: dict[str, subprocess.Popen] = {}
        self._threads = [threading.Thread(target=self._follow, args=(n,), name=f"journal-{n}", daemon=True)
                         for n in nodes]

    def start(self) -> "JournalFollow":
        for t in self._threads:
            t.start()
        return self

    def _cmd(self, follow: bool) -> str:
        units = " ".join(f"-u {shlex.quote(u)}" for u in JOURNAL_UNITS)
        return (f"journalctl {'-f' if follow else '--no-pager'} -o json --since @{int(self.since) - 1} {units}"
                f" --output-fields=MESSAGE,__REALTIME_TIMESTAMP,__CURSOR")

    def _take(self, node: str, raw: str) -> None:
        try:
            d = json.loads(raw)
        except ValueError:
            return
        msg = d.get("MESSAGE")
        if isinstance(msg, list):   # journald sends non-UTF-8 messages as byte arrays
            msg = bytes(msg).decode(errors="replace")
        if not isinstance(msg, str):
            return
        found = parse_execs(msg)
        if not found:
            return
        cursor = d.get("__CURSOR") or f"{node}:{d.get('__REALTIME_TIMESTAMP')}:{msg}"
        with self._lock:
            if cursor in self.seen:
                return
            self.seen.add(cursor)
        t = int(d.get("__REALTIME_TIMESTAMP", 0)) / 1e6 or time.time()
        for e in found:
            self.history.add("exec", t=t, src=f"journal:{node}", **e)

    def _follow(self, node: str) -> None:
        while not self._stop.is_set():
            argv = self.ssh_argv(node)
            # A machine that loses power never closes the connection: keepalives notice.
            argv = argv[:-1] + ["-o", "ServerAliveInterval=3", "-o", "ServerAliveCountMax=3", argv[-1]]
            try:
                p = subprocess.Popen(argv + [self._cmd(True)], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
            except OSError:
                self._stop.wait(2)
                continue
            self._procs[node] = p
            for line in p.stdout:
                self._take(node, line)
                if self._stop.is_set():
                    break
            p.poll()
            if p.returncode is None:
                p.terminate()
            self._stop.wait(1.0)   # the node is down or rebooting: try again

    def stop(self) -> None:
        self._stop.set()
        for p in list(self._procs.values()):
            if p.poll() is None:
                p.terminate()
        for t in self._threads:
            t.join(5)
        # One last full read catches anything written while a follower was reconnecting.
        for node in self.nodes:
            try:
                out = subprocess.run(self.ssh_argv(node) + [self._cmd(False)], capture_output=True, text=True,
                                     timeout=60, stdin=subprocess.DEVNULL).stdout
            except (subprocess.TimeoutExpired, OSError):
                continue
            for line in out.splitlines():
                self._take(node, line)
