"""The lab's lifecycle: up, add, remove, start, stop and down.

Every operation that changes the lab takes the lab lock, reads state.json,
acts, and writes state.json back before it returns.
"""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lab import hostnet, image, inventory, nodes, state
from lab.progress import Progress
from lab.settings import Settings
from lab.state import LabState, NodeState
from lab.topology import DEFAULT_NODES, Node, TopologyError, hosts_file, parse_nodes

REQUIRED_TOOLS = ("systemd-nspawn", "debootstrap", "nft", "ip", "ssh", "ssh-keygen")
SSH_WAIT_S = 120


class LabError(RuntimeError):
    pass


def preflight() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (it creates a bridge, nftables rules and containers)")
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        raise LabError(f"missing host tools: {', '.join(missing)}; "
                       "install them with: apt-get install -y systemd-container debootstrap nftables iproute2 openssh-client")


def write_shared_files(settings: Settings, lab: LabState) -> None:
    """Rewrite /etc/hosts (shared by all nodes) in place and the inventory."""
    text = hosts_file(lab.topology(), settings.bridge_address)
    # In place, not by rename: every running node has this inode bind-mounted.
    with open(settings.hosts_file, "a+") as handle:
        handle.seek(0)
        if handle.read() != text:
            handle.seek(0)
            handle.truncate()
            handle.write(text)
    inventory.write(settings.inventory_file, lab.topology(), settings.ssh_key)


def _running(node: NodeState) -> bool:
    return nodes.is_running(node.pid, node.name)


def wait_for_ssh(settings: Settings, targets: list[NodeState], progress: Progress,
                 timeout: float = SSH_WAIT_S) -> None:
    def wait_one(node: NodeState) -> float:
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            if nodes.ssh_answers(settings, node.address):
                return time.monotonic() - began
            if not _running(node):
                raise LabError(f"{node.name}: systemd-nspawn exited while booting; "
                               f"see {nodes.node_dir(settings, node.name) / 'console.log'}")
            time.sleep(0.5)
        raise LabError(f"{node.name}: no SSH answer from {node.address} after {timeout:.0f}s; "
                       f"see {nodes.node_dir(settings, node.name) / 'console.log'}")

    with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
        futures = {node.name: pool.submit(wait_one, node) for node in targets}
        for name, future in futures.items():
            future.result()
            progress.say(f"{name}: ssh answers")


def _boot(settings: Settings, lab: LabState, targets: list[NodeState], progress: Progress) -> None:
    if not targets:
        return
    public_key = nodes.ensure_ssh_key(settings)
    hostnet.ensure_bridge(settings)
    hostnet.ensure_bridge_netfilter()
    hostnet.ensure_table(settings)
    write_shared_files(settings, lab)
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        for done in pool.map(lambda n: nodes.prepare(settings, n.node, Path(n.image), public_key), targets):
            pass
    for node in targets:
        node.pid = nodes.start(settings, node.node, Path(node.image))
        progress.say(f"{node.name}: booting {node.address} (nspawn pid {node.pid})")
    state.save(settings.state_file, lab)
    wait_for_ssh(settings, targets, progress)


def up(settings: Settings, spec: str | None, progress: Progress) -> LabState:
    preflight()
    with state.locked(settings.lock_file):
        lab = state.load(settings.state_file)
        if spec:
            wanted = parse_nodes(spec, settings.subnet_prefix, lab.topology())
            extra = set(lab.names()) - {node.name for node in wanted}
            if extra:
                raise LabError(f"the lab also has {', '.join(sorted(extra))}, not in --nodes; "
                               "`python -m lab remove NODE` them or `python -m lab down` first")
        elif lab.nodes:
            wanted = lab.topology()
        else:
            wanted = parse_nodes(",".join(DEFAULT_NODES), settings.subnet_prefix)

        known = set(lab.names())
        for node in wanted:
            if node.name not in known:
                lab.nodes.append(NodeState(node.name, node.address))
        down = [node for node in lab.nodes if not _running(node)]
        if not down and hostnet.bridge_exists(settings):
            write_shared_files(settings, lab)
            progress.say(f"lab already up: {len(lab.nodes)} nodes running; nothing to do")
            return lab

        recipe = image.Recipe()
        rootfs = None
        for node in down:
            if not node.image or not Path(node.image).is_dir():
                rootfs = rootfs or image.ensure_image(settings.cache_dir, recipe, progress)
                node.image = str(rootfs)
        with progress.step(f"boot {len(down)} node(s): {', '.join(n.name for n in down)}"):
            _boot(settings, lab, down, progress)
        write_shared_files(settings, lab)
        progress.say(f"lab up: {len(lab.nodes)} nodes; inventory {settings.inventory_file}")
        return lab


def add(settings: Settings, spec: str, progress: Progress) -> LabState:
    """Add and boot one or more nodes to a lab that is up."""
    preflight()
    with state.locked(settings.lock_file):
        lab = state.load(settings.state_file)
        new = parse_nodes(spec, settings.subnet_prefix, lab.topology())
        clash = [node.name for node in new if node.name in lab.names()]
        if clash:
            raise LabError(f"{', '.join(clash)} already in the lab; use `python -m lab start NODE` to boot a stopped one")
        rootfs = image.ensure_image(settings.cache_dir, image.Recipe(), progress)
        targets = [NodeState(node.name, node.address, str(rootfs)) for node in new]
        lab.nodes.extend(targets)
        _boot(settings, lab, targets, progress)
        write_shared_files(settings, lab)
        return lab


def remove(settings: Settings, name: str, progress: Progress) -> LabState:
    with state.locked(settings.lock_file):
        lab = state.load(settings.state_file)
        node = lab.get(name)
        clean = nodes.shutdown(settings, name, node.pid)
        progress.say(f"{name}: stopped ({'clean' if clean else 'forced'})")
        nodes.remove_cgroups(settings, name)
        shutil.rmtree(nodes.node_dir(settings, name), ignore_errors=True)
        lab.nodes.remove(node)
        state.save(settings.state_file, lab)
        write_shared_files(settings, lab)
        progress.say(f"{name}: removed")
        return lab


def start_node(settings: Settings, name: str, progress: Progress, wait: bool = True) -> NodeState:
    with state.locked(settings.lock_file):
        lab = state.load(settings.state_file)
        node = lab.get(name)
        if _running(node):
            progress.say(f"{name}: already running (pid {node.pid})")
            return node
        public_key = nodes.ensure_ssh_key(settings)
        nodes.prepare(settings, node.node, Path(node.image), public_key)
        node.pid = nodes.start(settings, node.node, Path(node.image))
        state.save(settings.state_file, lab)
        progress.say(f"{name}: booting (nspawn pid {node.pid})")
    if wait:
        wait_for_ssh(settings, [node], progress)
    return node


def stop_node(settings: Settings, name: str, progress: Progress, *, clean: bool) -> None:
    with state.locked(settings.lock_file):
        lab = state.load(settings.state_file)
        node = lab.get(name)
        if clean:
            was_clean = nodes.shutdown(settings, name, node.pid)
            progress.say(f"{name}: shut down" + ("" if was_clean else " (timed out; power cut instead)"))
        else:
            nodes.power_cut(settings, name, node.pid)
            progress.say(f"{name}: power cut")
        node.pid = None
        state.save(settings.state_file, lab)


def down(settings: Settings, progress: Progress) -> None:
    """Undo everything `up` made; safe to run again and on a half-made lab."""
    with state.locked(settings.lock_file):
        lab = state.load(settings.state_file)
        with ThreadPoolExecutor(max_workers=max(1, len(lab.nodes))) as pool:
            results = {node.name: pool.submit(nodes.shutdown, settings, node.name, node.pid, 15)
                       for node in lab.nodes}
            for name, result in results.items():
                progress.say(f"{name}: stopped ({'clean' if result.result() else 'forced'})")
        for node in lab.nodes:
            nodes.remove_cgroups(settings, node.name)
        if hostnet.remove_table(settings):
            progress.say(f"nft table inet {settings.nft_table}: deleted")
        if hostnet.remove_bridge(settings):
            progress.say(f"bridge {settings.bridge}: deleted")
        if settings.state_dir.exists():
            shutil.rmtree(settings.state_dir)
            progress.say(f"{settings.state_dir}: deleted")
        if settings.inventory_file.exists():
            settings.inventory_file.unlink()
            progress.say(f"{settings.inventory_file}: deleted")
        progress.say("lab down")


def node_status(settings: Settings, node: NodeState) -> str:
    if not _running(node):
        return "down"
    return "paused" if nodes.is_frozen(settings, node.name) else "running"
