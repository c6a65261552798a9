"""`python -m lab COMMAND`: the lab's command line."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys

from lab import control, faults, hostnet, nodes, settings as lab_settings, state
from lab.progress import Progress
from lab.topology import TopologyError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="build the image once, boot the nodes, write the inventory")
    up.add_argument("--nodes", help="comma-separated node names, NAME:ADDRESS to pin one "
                                    "(default: core1,core2,core3,worker1,worker2)")
    sub.add_parser("down", help="stop every node, delete the bridge, nft table and node state")
    status = sub.add_parser("status", help="nodes, PIDs, addresses, up/paused/down, partitions")
    status.add_argument("--json", action="store_true")
    status.add_argument("--probe", action="store_true", help="also check that SSH answers")

    ssh = sub.add_parser("ssh", help="open a shell on a node (or run a command)")
    ssh.add_argument("node")
    ssh.add_argument("argv", nargs=argparse.REMAINDER)
    execute = sub.add_parser("exec", help="run a command on a node; exits with its code")
    execute.add_argument("node")
    execute.add_argument("argv", nargs=argparse.REMAINDER)

    add = sub.add_parser("add", help="add and boot node(s), e.g. `add worker3`")
    add.add_argument("nodes")
    remove = sub.add_parser("remove", help="stop a node and delete its disk")
    remove.add_argument("node")

    for name, text in (("power-cut", "SIGKILL a node"), ("shutdown", "clean poweroff of a node"),
                       ("start", "boot a stopped node on its overlay"),
                       ("pause", "freeze every process of a node"), ("resume", "thaw a paused node"),
                       ("isolate", "cut a node off from every other node")):
        one = sub.add_parser(name, help=text)
        one.add_argument("node")
    part = sub.add_parser("partition", help="cut the link between two nodes, both ways")
    part.add_argument("a")
    part.add_argument("b")
    sub.add_parser("heal", help="remove every partition and isolation")
    sub.add_parser("image", help="build (or show) the cached base image")
    return parser


def _status(settings, as_json: bool, probe: bool) -> int:
    lab = state.load(settings.state_file)
    rows = []
    for node in lab.nodes:
        row = {"name": node.name, "address": node.address, "pid": node.pid,
               "state": control.node_status(settings, node), "groups": list(node.node.groups)}
        row["memory_mb"] = round(nodes.memory_kb(settings, node.name, node.pid) / 1024, 1)
        if probe:
            row["ssh"] = row["state"] == "running" and nodes.ssh_answers(settings, node.address)
        rows.append(row)
    faults_in_force = hostnet.active_faults(settings)
    if as_json:
        print(json.dumps({"bridge": settings.bridge if hostnet.bridge_exists(settings) else None,
                          "ssh_key": str(settings.ssh_key), "inventory": str(settings.inventory_file),
                          "nodes": rows, "partitions": faults_in_force}, indent=2))
        return 0
    if not rows:
        print("lab is down (no nodes); start it with `python -m lab up`")
        return 0
    bridge = "up" if hostnet.bridge_exists(settings) else "MISSING"
    print(f"bridge {settings.bridge} {settings.bridge_address}/24: {bridge}")
    print(f"{'NODE':10} {'ADDRESS':12} {'PID':>8}  {'STATE':8} {'MEM MB':>7} {'SSH':4} GROUPS")
    for row in rows:
        ssh = ("yes" if row.get("ssh") else "no") if probe else "-"
        print(f"{row['name']:10} {row['address']:12} {row['pid'] or '-':>8}  {row['state']:8} {row['memory_mb']:>7} "
              f"{ssh:4} {','.join(row['groups']) or '-'}")
    print("partitions: " + ("; ".join(faults_in_force) if faults_in_force else "none"))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = lab_settings.load()
    progress = Progress()
    try:
        if args.command == "up":
            control.up(settings, args.nodes, progress)
        elif args.command == "down":
            control.down(settings, progress)
        elif args.command == "status":
            return _status(settings, args.json, args.probe)
        elif args.command in ("ssh", "exec"):
            node = state.load(settings.state_file).get(args.node)
            remote = [shlex.join(args.argv)] if args.argv else []
            interactive = args.command == "ssh" and sys.stdin.isatty()
            command = nodes.ssh_command(settings, node.address, tty=interactive and not remote) + remote
            if args.command == "ssh":
                os.execvp(command[0], command)
            return subprocess.run(command).returncode
        elif args.command == "add":
            control.add(settings, args.nodes, progress)
        elif args.command == "remove":
            control.remove(settings, args.node, progress)
        elif args.command == "power-cut":
            faults.power_cut(args.node, settings, progress)
        elif args.command == "shutdown":
            faults.shutdown(args.node, settings, progress)
        elif args.command == "start":
            faults.start(args.node, settings, progress)
        elif args.command == "pause":
            faults.pause(args.node, settings)
            progress.say(f"{args.node}: paused")
        elif args.command == "resume":
            faults.resume(args.node, settings)
            progress.say(f"{args.node}: resumed")
        elif args.command == "partition":
            faults.partition(args.a, args.b, settings)
            progress.say(f"partition {args.a} <-/-> {args.b}")
        elif args.command == "isolate":
            faults.isolate(args.node, settings)
            progress.say(f"{args.node}: isolated from every other node")
        elif args.command == "heal":
            faults.heal(settings)
            progress.say("healed: no partitions")
        elif args.command == "image":
            from lab import image
            control.preflight()
            image.ensure_image(settings.cache_dir, image.Recipe(), progress)
    except (control.LabError, TopologyError, KeyError, RuntimeError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"lab: {message}", file=sys.stderr)
        return 1
    return 0
