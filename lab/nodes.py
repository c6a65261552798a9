"""Booting, stopping and finding lab nodes: one systemd-nspawn process each.

A node is a booted systemd on an overlay of the shared base image. Its upper
directory (`<state>/nodes/<name>/upper`) holds everything the node changed,
so a node that is stopped or power-cut boots again with its disk intact.

Each node's processes (nspawn and the whole container) are placed in a cgroup
of the v1 freezer hierarchy when one is mounted, which makes pausing a node
atomic and lets a power cut kill every process at once.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

from lab import sh
from lab.settings import Settings
from lab.topology import Node

CGROUP_ROOT = Path("/sys/fs/cgroup")
FREEZER_ROOT = CGROUP_ROOT / "freezer"
# Hierarchies in which each node gets a cgroup of its own. Without its own
# name=systemd (and unified) cgroup, every node's systemd would share one
# `/payload` subtree and they would remove each other's service cgroups.
NODE_HIERARCHIES = ("freezer", "systemd", "unified")
HOST_KEY_TYPES = ("ed25519", "ecdsa")
SSH_OPTS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "BatchMode=yes"]


# ---------------------------------------------------------------- node files

def node_dir(settings: Settings, name: str) -> Path:
    return settings.nodes_dir / name


def upper_dir(settings: Settings, name: str) -> Path:
    return node_dir(settings, name) / "upper"


def _mkdirs_like(lower: Path, upper: Path, relative: str) -> Path:
    """Create `upper/relative` with each component's mode and owner taken from
    the image, since overlayfs shows the upper directory's metadata."""
    current_lower, current_upper = lower, upper
    for part in Path(relative).parts:
        current_lower, current_upper = current_lower / part, current_upper / part
        if not current_upper.exists():
            current_upper.mkdir()
            if current_lower.is_dir():
                st = current_lower.stat()
                os.chown(current_upper, st.st_uid, st.st_gid)
                current_upper.chmod(st.st_mode & 0o7777)
    return current_upper


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.write_text(text)
    path.chmod(mode)


def network_unit(node: Node, settings: Settings) -> str:
    # Named to sort before 80-container-host0.network, which would otherwise
    # win and leave the node with only a link-local address. No gateway: the
    # lab is offline by design.
    return (f"[Match]\nName=host0\n\n[Network]\nAddress={node.address}/24\n"
            "LinkLocalAddressing=no\nIPv6AcceptRA=no\n")


def prepare(settings: Settings, node: Node, rootfs: Path, public_key: str) -> Path:
    """Lay the per-node files into the node's upper directory."""
    upper = upper_dir(settings, node.name)
    first_time = not upper.exists()
    upper.mkdir(parents=True, exist_ok=True)
    upper.chmod(0o755)

    network = _mkdirs_like(rootfs, upper, "etc/systemd/network")
    _write(network / "10-host0.network", network_unit(node, settings))
    etc = upper / "etc"
    _write(etc / "hostname", node.name + "\n")
    ssh_root = _mkdirs_like(rootfs, upper, "root/.ssh")
    ssh_root.chmod(0o700)
    _write(ssh_root / "authorized_keys", public_key.strip() + "\n", 0o600)

    if first_time or not (etc / "machine-id").exists():
        _write(etc / "machine-id", uuid.uuid4().hex + "\n", 0o444)
    ssh_etc = _mkdirs_like(rootfs, upper, "etc/ssh")
    # Host keys are per node: the image ships none. No RSA key: generating
    # one takes seconds on a busy 2-core host, and every client speaks ed25519.
    for kind in HOST_KEY_TYPES:
        key = ssh_etc / f"ssh_host_{kind}_key"
        if not key.exists():
            sh.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"root@{node.name}", "-f", str(key)])
    conf_d = _mkdirs_like(rootfs, upper, "etc/ssh/sshd_config.d")
    _write(conf_d / "10-lab-host-keys.conf",
           "".join(f"HostKey /etc/ssh/ssh_host_{kind}_key\n" for kind in HOST_KEY_TYPES))
    return upper


# ---------------------------------------------------------------- processes

def freezer_dir(settings: Settings, name: str) -> Path | None:
    if not (FREEZER_ROOT / "freezer.state").exists() and not (FREEZER_ROOT / "cgroup.procs").exists():
        return None
    return FREEZER_ROOT / settings.nft_table / name


def node_cgroups(settings: Settings, name: str) -> list[Path]:
    """The node's own cgroup in each mounted hierarchy that needs one."""
    found = []
    for hierarchy in NODE_HIERARCHIES:
        root = CGROUP_ROOT / hierarchy
        if (root / "cgroup.procs").exists():
            found.append(root / settings.nft_table / name)
    if not found and (CGROUP_ROOT / "cgroup.controllers").exists():
        # A pure cgroup v2 host: one hierarchy at the root.
        found.append(CGROUP_ROOT / settings.nft_table / name)
    return found


def _join_cgroups(cgroups: list[Path]):
    def join() -> None:
        for cgroup in cgroups:
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))
    return join


def _rmdir_tree(path: Path) -> None:
    """Remove a cgroup and its children, deepest first (cgroupfs needs rmdir)."""
    if not path.is_dir():
        return
    for current, dirs, _files in os.walk(path, topdown=False):
        for child in dirs:
            try:
                os.rmdir(os.path.join(current, child))
            except OSError:
                pass
    try:
        path.rmdir()
    except OSError:
        pass


def nspawn_command(settings: Settings, node: Node, rootfs: Path) -> list[str]:
    return [
        "systemd-nspawn", "--quiet",
        "--directory", str(rootfs),
        f"--overlay={rootfs}:{upper_dir(settings, node.name)}:/",
        "--machine", node.name, "--hostname", node.name,
        # The host runs no systemd: without these nspawn fails to reach a bus.
        "--register=no", "--keep-unit",
        "--settings=no", "--link-journal=no", "--console=read-only",
        f"--network-bridge={settings.bridge}",
        f"--bind-ro={settings.hosts_file}:/etc/hosts",
        "--boot",
    ]


def start(settings: Settings, node: Node, rootfs: Path) -> int:
    """Boot `node` detached from this process and return the nspawn PID."""
    home = node_dir(settings, node.name)
    # A power cut leaves nspawn's overlay work directory behind.
    for leftover in home.glob(".#*"):
        shutil.rmtree(leftover, ignore_errors=True)
    cgroups = node_cgroups(settings, node.name)
    for cgroup in cgroups:
        # What a previous boot of this node left behind (after a power cut).
        _rmdir_tree(cgroup)
        cgroup.mkdir(parents=True, exist_ok=True)
    cgroup = freezer_dir(settings, node.name)
    if cgroup is not None:
        (cgroup / "freezer.state").write_text("THAWED")
    _clear_stale_veth(node.name)
    with open(home / "console.log", "ab") as console:
        proc = subprocess.Popen(
            nspawn_command(settings, node, rootfs),
            stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_join_cgroups(cgroups), close_fds=True)
    return proc.pid


def host_veth(name: str) -> str:
    """The host side of the node's veth pair, as nspawn names it. Longer names than
    IFNAMSIZ allows are shortened by nspawn in a version-dependent way; the lab's
    node names are short enough not to be."""
    return f"vb-{name}"


def _clear_stale_veth(name: str, wait: float = 5.0) -> None:
    """After a power cut the kernel can keep the old veth for a moment, and nspawn
    then fails with `Failed to add new veth interfaces ... File exists`. Wait for it
    to go, and delete it if it lingers: no live container owns it any more."""
    link = Path("/sys/class/net") / host_veth(name)
    deadline = time.monotonic() + wait
    while link.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    if link.exists():
        sh.run(["ip", "link", "delete", host_veth(name)], check=False)


def is_running(pid: int | None, name: str) -> bool:
    """True when `pid` is still the nspawn process of node `name`."""
    if not pid:
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    if state == "Z":
        return False
    return bool(argv) and argv[0].endswith(b"systemd-nspawn") and name.encode() in argv


def wait_gone(pid: int, name: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_running(pid, name):
            return True
        time.sleep(0.1)
    return not is_running(pid, name)


def cgroup_pids(cgroup: Path | None) -> list[int]:
    if cgroup is None or not cgroup.exists():
        return []
    return [int(line) for line in (cgroup / "cgroup.procs").read_text().split()]


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def freeze(settings: Settings, name: str, pid: int) -> None:
    cgroup = freezer_dir(settings, name)
    if cgroup is not None and cgroup.exists():
        (cgroup / "freezer.state").write_text("FROZEN")
        deadline = time.monotonic() + 10
        while (cgroup / "freezer.state").read_text().strip() != "FROZEN":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: the freezer did not settle; try `python -m lab resume {name}`")
            time.sleep(0.05)
        return
    # No freezer: stop the tree, again until no new process slipped through.
    seen: set[int] = set()
    while True:
        tree = set(process_tree(pid)) - seen
        if not tree:
            return
        _signal_all(sorted(tree), signal.SIGSTOP)
        seen |= tree


def thaw(settings: Settings, name: str, pid: int | None) -> None:
    cgroup = freezer_dir(settings, name)
    if cgroup is not None and cgroup.exists():
        (cgroup / "freezer.state").write_text("THAWED")
        return
    if pid:
        _signal_all(process_tree(pid), signal.SIGCONT)


def is_frozen(settings: Settings, name: str) -> bool:
    cgroup = freezer_dir(settings, name)
    if cgroup is None or not cgroup.exists():
        return False
    return (cgroup / "freezer.state").read_text().strip() != "THAWED"


def power_cut(settings: Settings, name: str, pid: int | None) -> None:
    """SIGKILL the node's every process at once, like pulling its plug."""
    cgroup = freezer_dir(settings, name)
    victims = set(cgroup_pids(cgroup))
    if is_running(pid, name):
        victims |= set(process_tree(pid))
    _signal_all(sorted(victims), signal.SIGKILL)
    # Frozen processes only die once thawed.
    thaw(settings, name, None)
    if pid:
        wait_gone(pid, name, 10)
    deadline = time.monotonic() + 10
    while cgroup_pids(cgroup) and time.monotonic() < deadline:
        time.sleep(0.05)


def shutdown(settings: Settings, name: str, pid: int | None, timeout: float = 30) -> bool:
    """Clean poweroff: SIGTERM makes nspawn ask the node's systemd to halt.
    Falls back to a power cut after `timeout`; returns whether it was clean."""
    if not is_running(pid, name):
        return True
    thaw(settings, name, pid)
    os.kill(pid, signal.SIGTERM)
    if wait_gone(pid, name, timeout):
        return True
    power_cut(settings, name, pid)
    return False


def memory_kb(settings: Settings, name: str, pid: int | None) -> int:
    """Proportional set size of every process of the node, in KiB: what the
    node costs the host in memory, page cache excluded."""
    pids = set(cgroup_pids(freezer_dir(settings, name)))
    if not pids and is_running(pid, name):
        pids = set(process_tree(pid))
    total = 0
    for each in pids:
        try:
            for line in Path(f"/proc/{each}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def remove_cgroups(settings: Settings, name: str) -> None:
    for cgroup in node_cgroups(settings, name):
        _rmdir_tree(cgroup)
        try:
            cgroup.parent.rmdir()  # the lab's own parent, once it is empty
        except OSError:
            pass


# ---------------------------------------------------------------- ssh

def ssh_command(settings: Settings, address: str, *, tty: bool = False, timeout: int = 5) -> list[str]:
    argv = ["ssh", "-i", str(settings.ssh_key), *SSH_OPTS, "-o", f"ConnectTimeout={timeout}"]
    if tty:
        argv.append("-t")
    return argv + [f"root@{address}"]


def ssh_answers(settings: Settings, address: str) -> bool:
    try:
        proc = subprocess.run(ssh_command(settings, address, timeout=2) + ["true"],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


def ensure_ssh_key(settings: Settings) -> str:
    settings.ssh_dir.mkdir(parents=True, exist_ok=True)
    settings.ssh_dir.chmod(0o700)
    if not settings.ssh_key.exists():
        sh.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "taskforce-lab",
                "-f", str(settings.ssh_key)])
    return settings.ssh_key.with_suffix(".pub").read_text()
