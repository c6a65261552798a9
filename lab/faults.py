"""Fault injectors for drills: the same primitives as the CLI, as a Python API.

    from lab import faults
    faults.power_cut("core2")
    faults.partition("core1", "core3")
    faults.heal()

Every fault targets lab nodes only, by name. Addresses come from the lab's
own state, never from the caller.
"""

from __future__ import annotations

import subprocess

from lab import control, hostnet, nodes, settings as lab_settings, state
from lab.progress import Progress
from lab.settings import Settings


def _ctx(settings: Settings | None) -> Settings:
    return settings or lab_settings.load()


def _node(settings: Settings, name: str) -> state.NodeState:
    return state.load(settings.state_file).get(name)


def power_cut(name: str, settings: Settings | None = None, progress: Progress | None = None) -> None:
    """SIGKILL the node: no shutdown, no flush, like pulling the plug."""
    control.stop_node(_ctx(settings), name, progress or Progress(), clean=False)


def shutdown(name: str, settings: Settings | None = None, progress: Progress | None = None) -> None:
    """Clean poweroff through the node's systemd."""
    control.stop_node(_ctx(settings), name, progress or Progress(), clean=True)


def start(name: str, settings: Settings | None = None, progress: Progress | None = None,
          wait: bool = True) -> None:
    """Boot a stopped node again on its own overlay; waits for SSH by default."""
    control.start_node(_ctx(settings), name, progress or Progress(), wait=wait)


def pause(name: str, settings: Settings | None = None) -> None:
    """Freeze every process of the node (a VM pause / a long GC stall)."""
    s = _ctx(settings)
    node = _node(s, name)
    if not nodes.is_running(node.pid, name):
        raise control.LabError(f"{name} is not running")
    nodes.freeze(s, name, node.pid)


def resume(name: str, settings: Settings | None = None) -> None:
    s = _ctx(settings)
    nodes.thaw(s, name, _node(s, name).pid)


def partition(a: str, b: str, settings: Settings | None = None) -> None:
    """Cut the link between nodes a and b in both directions."""
    s = _ctx(settings)
    if a == b:
        raise control.LabError("partition needs two different nodes")
    hostnet.apply(s, hostnet.partition_rules(s, _node(s, a).node, _node(s, b).node))


def partition_groups(side_a: list[str], side_b: list[str], settings: Settings | None = None) -> None:
    """Cut every link between two groups of nodes (e.g. a minority and a majority)."""
    s = _ctx(settings)
    script = "".join(hostnet.partition_rules(s, _node(s, a).node, _node(s, b).node)
                     for a in side_a for b in side_b)
    hostnet.apply(s, script)


def isolate(name: str, settings: Settings | None = None) -> None:
    """Cut the node off from every other node (the host can still reach it)."""
    s = _ctx(settings)
    hostnet.apply(s, hostnet.isolate_rules(s, _node(s, name).node))


def heal(settings: Settings | None = None) -> None:
    """Remove every partition and isolation."""
    hostnet.heal(_ctx(settings))


def active(settings: Settings | None = None) -> list[str]:
    """The partitions in force, for reports."""
    return hostnet.active_faults(_ctx(settings))


def crash_service(name: str, service: str, settings: Settings | None = None) -> None:
    """SIGKILL one systemd service on a node (systemd restarts it per its unit)."""
    run(name, ["systemctl", "kill", "-s", "KILL", service], settings=settings, check=True)


def run(name: str, argv: list[str], settings: Settings | None = None, check: bool = False,
        timeout: float | None = 120) -> subprocess.CompletedProcess:
    """Run a command on a node over SSH and capture its output."""
    s = _ctx(settings)
    import shlex
    proc = subprocess.run(nodes.ssh_command(s, _node(s, name).address) + [shlex.join(argv)],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise control.LabError(f"{name}: `{shlex.join(argv)}` exited {proc.returncode}: {proc.stderr.strip()}")
    return proc
