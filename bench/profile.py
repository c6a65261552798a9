"""Where the time goes: py-spy (run on the controller against the host PID of a process inside
a lab node; nspawn shares the kernel) samples the Raft leader and a gateway under load, only
the thread that holds the GIL (`--gil`), and the collapsed stacks are summarised as the
functions with the most samples, inclusive and self.

Why the GIL: py-spy tells a thread on CPU from an idle one by the OS thread it maps it to, and
for a process in a lab node it cannot map them, so without `--gil` every thread of the process
counts as busy in every sample (an idle gateway gave 47 "busy" threads). The thread holding
the GIL is the one running Python code, which is the time these processes can spend: one core
at most."""
from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Optional

from .lab import Lab, say

RATE = 100   # samples per second


def py_spy() -> Optional[str]:
    exe = Path(sys.executable).parent / "py-spy"
    return str(exe) if exe.exists() else shutil.which("py-spy")


def start(lab: Lab, node: str, unit: str, seconds: float, out: Path) -> Optional[subprocess.Popen]:
    exe = py_spy()
    pid = lab.host_pid(node, unit)
    if not exe or not pid:
        say(f"profile: cannot sample {node}/{unit} (py-spy {'found' if exe else 'missing'}, pid {pid})")
        return None
    return subprocess.Popen([exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(RATE),
                             "--format", "raw", "--output", str(out), "--nonblocking", "--gil"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def summarise(collapsed: str, seconds: float = 0.0, rate: int = RATE, top: int = 12) -> dict:
    """From py-spy's raw (collapsed) output of GIL-holding samples: how busy the process was
    (samples over the samples a GIL held all the time would give), and the top frames by
    inclusive and by self count, as shares of those samples."""
    inclusive: Counter = Counter()
    self_: Counter = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_short(f) for f in stack.split(";")]
        self_[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n

    def share(c: Counter) -> list[tuple[str, float]]:
        return [(f, round(100 * v / total, 1)) for f, v in c.most_common(top)] if total else []
    busy = round(100 * total / (seconds * rate), 1) if seconds else None
    return {"samples": total, "busy_pct_of_one_core": busy, "top_inclusive": share(inclusive), "top_self": share(self_)}


def _short(frame: str) -> str:
    # "func (path/to/module.py:123)" -> "func (module.py)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit("/", 1)[-1].split(":")[0]
    return f"{name} ({where})" if where else name


def finish(proc: Optional[subprocess.Popen], out: Path, seconds: float) -> Optional[dict]:
    if proc is None:
        return None
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        return None
    if not out.exists():
        say(f"profile: py-spy wrote nothing: {err.decode(errors='replace').strip()[-300:]}")
        return None
    return summarise(out.read_text(), seconds)
