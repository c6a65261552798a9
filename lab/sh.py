"""Running host commands with errors that say which command failed and why."""

from __future__ import annotations

import subprocess
from typing import Sequence


class CommandFailed(RuntimeError):
    pass


def run(argv: Sequence[str], *, check: bool = True, capture: bool = True,
        input: str | None = None, timeout: float | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        list(argv), input=input, text=True, timeout=timeout,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
    )
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip().splitlines()[-5:] if capture else []
        raise CommandFailed(f"`{' '.join(argv)}` exited {proc.returncode}: " + " | ".join(detail))
    return proc
