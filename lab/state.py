"""What the lab has made, recorded on disk so that `down` can undo exactly that.

state.json holds the node list (in order), each node's address, the image its
overlay sits on, and the PID of its systemd-nspawn process while it runs.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from lab.topology import Node


@dataclass
class NodeState:
    name: str
    address: str
    image: str = ""
    pid: int | None = None

    @property
    def node(self) -> Node:
        return Node(self.name, self.address)


@dataclass
class LabState:
    nodes: list[NodeState] = field(default_factory=list)

    def get(self, name: str) -> NodeState:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no node {name!r} in the lab (nodes: {', '.join(self.names()) or 'none'}); see `python -m lab status`")

    def names(self) -> list[str]:
        return [node.name for node in self.nodes]

    def topology(self) -> list[Node]:
        return [node.node for node in self.nodes]


def load(path: Path) -> LabState:
    if not path.exists():
        return LabState()
    raw = json.loads(path.read_text())
    return LabState(nodes=[NodeState(**item) for item in raw.get("nodes", [])])


def save(path: Path, state: LabState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"nodes": [asdict(n) for n in state.nodes]}, indent=2) + "\n")
    os.replace(tmp, path)


@contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """One lab-changing command at a time."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another lab command to finish (lock {lock_file}) ...", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
