"""Back ends for machines named in an Ansible inventory: the nspawn lab and real machines.

The inventory is the same one the playbooks use (hosts.yml with the groups rabbitmq,
orchestrators, gateways, workers_python, workers_java, plus group_vars/). From it come the
components and their systemd units, the gateways' URLs and, from the secrets file beside it,
the API token.

- `LabTarget` (an inventory whose group_vars say `taskforce_env: lab`, or `--backend lab`):
  node faults through lab/faults.py (power cut, boot, pause, partition, heal); service faults
  with systemctl over the lab's SSH.
- `SshTarget` (real machines): everything through pyinfra over SSH: `systemctl kill/stop/start`;
  a power cut is an immediate reboot through sysrq (no sync, no clean shutdown); partitions
  are nftables rules in a table of their own (`inet tfdrill`) on the nodes themselves, which
  drop only traffic between cluster nodes, never the controller's SSH.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Optional

import yaml

from ..executions import JournalFollow
from .base import CRASH, NODE_PAUSE, PARTITION, PAUSE, POWER_CUT, STOP, Component, Refused, Target

UNITS = {"orchestrator": "taskforce-orchestrator", "gateway": "taskforce-gateway",
         "python": "taskforce-worker@*", "java": "taskforce-worker-java", "rabbitmq": "rabbitmq-server"}
GROUPS = {"rabbitmq": "rabbitmq", "orchestrators": "orchestrator", "gateways": "gateway",
          "workers_python": "python", "workers_java": "java"}
# Where the gateway role may put its port; the first one set wins.
GATEWAY_PORT_VARS = ("gateway_port", "gateway_listen_port", "taskforce_gateway_port")
DEFAULT_GATEWAY_PORT = 8080
NFT_TABLE = "tfdrill"


class Inventory:
    """Just enough of an Ansible YAML inventory: hosts, groups (nested children), vars from
    hosts.yml, group_vars/ and host_vars/. Templated values are not evaluated."""

    def __init__(self, path: Path) -> None:
        self.dir = path if path.is_dir() else path.parent
        hosts_file = path if path.is_file() else path / "hosts.yml"
        if not hosts_file.exists():
            raise Refused(f"no inventory at {hosts_file}; for the lab, run `make up` first")
        data = yaml.safe_load(hosts_file.read_text()) or {}
        self.hostvars: dict[str, dict] = {}
        self.groups: dict[str, list[str]] = {}
        self.groupvars: dict[str, dict] = {}
        self._walk("all", data.get("all") or {})
        for g in list(self.groups) + ["all"]:
            self.groupvars.setdefault(g, {}).update(self._vars_dir(self.dir / "group_vars", g))
        for h in self.hostvars:
            self.hostvars[h].update(self._vars_dir(self.dir / "host_vars", h))

    def _walk(self, name: str, node: dict) -> list[str]:
        members: list[str] = []
        for h, hv in (node.get("hosts") or {}).items():
            self.hostvars.setdefault(h, {}).update(hv or {})
            members.append(h)
        self.groupvars.setdefault(name, {}).update(node.get("vars") or {})
        for child, cnode in (node.get("children") or {}).items():
            members += self._walk(child, cnode or {})
        self.groups[name] = sorted(set(self.groups.get(name, [])) | set(members))
        return members

    @staticmethod
    def _vars_dir(base: Path, name: str) -> dict:
        out: dict = {}
        f = base / f"{name}.yml"
        files = [f] if f.is_file() else sorted((base / name).glob("*.yml")) if (base / name).is_dir() else []
        for p in files:
            out.update(yaml.safe_load(p.read_text()) or {})
        return out

    def var(self, host: Optional[str], key: str, default: Any = None) -> Any:
        if host and key in self.hostvars.get(host, {}):
            return self.hostvars[host][key]
        if host:
            for g, members in self.groups.items():
                if g != "all" and host in members and key in self.groupvars.get(g, {}):
                    return self.groupvars[g][key]
        return self.groupvars.get("all", {}).get(key, default)

    def address(self, host: str) -> str:
        return str(self.var(host, "ansible_host", host))

    def secrets(self) -> dict:
        f = self.dir / ".secrets.yml"
        if not f.exists():
            return {}
        return (yaml.safe_load(f.read_text()) or {}).get("taskforce_secrets") or {}


class InventoryTarget(Target):
    """What the lab and real machines share: the topology from the inventory and service
    faults through systemctl. Subclasses say how a command reaches a node."""

    capabilities = frozenset({CRASH, STOP, PAUSE})

    def __init__(self, inventory_dir: Path, gateway_urls: Optional[list[str]] = None) -> None:
        super().__init__()
        self.inventory_dir, self._gateway_urls = inventory_dir, gateway_urls
        self.reload()
        tokens = self.inv.secrets().get("api_tokens") or {}
        self.token = os.environ.get("TASKFORCE_TOKEN") or tokens.get("client") or tokens.get("admin") or ""
        if not self.token:
            raise Refused(f"no API token: set TASKFORCE_TOKEN, or roll out with site.yml so that "
                          f"{self.inv.dir / '.secrets.yml'} holds api_tokens")

    def reload(self) -> None:
        """Read the topology from the inventory again: after an operation that added or removed
        machines, health means the cluster the inventory now describes."""
        inventory_dir, gateway_urls = self.inventory_dir, self._gateway_urls
        self.inv = Inventory(inventory_dir)
        missing = [g for g in ("rabbitmq", "orchestrators", "gateways") if not self.inv.groups.get(g)]
        if missing:
            raise Refused(f"inventory {inventory_dir} has no hosts in {', '.join(missing)}")
        comps: list[Component] = []
        for group, role in GROUPS.items():
            for h in self.inv.groups.get(group, []):
                if role in ("python", "java"):
                    comps.append(Component("worker", f"{h}/{role}", h, lang=role, unit=UNITS[role]))
                elif role == "gateway":
                    port = next((self.inv.var(h, k) for k in GATEWAY_PORT_VARS if self.inv.var(h, k)),
                                DEFAULT_GATEWAY_PORT)
                    comps.append(Component("gateway", f"{h}/gateway", h, unit=UNITS[role],
                                           address=f"http://{self.inv.address(h)}:{port}"))
                elif role == "orchestrator":
                    comps.append(Component("orchestrator", f"{h}/orchestrator", h, unit=UNITS[role],
                                           address=self.inv.address(h)))
                else:
                    comps.append(Component("rabbitmq", f"{h}/rabbitmq", h, unit=UNITS[role]))
        if gateway_urls:
            gws = [c for c in comps if c.role == "gateway"]
            comps = [c for c in comps if c.role != "gateway"] + [
                Component("gateway", gws[i].name if i < len(gws) else f"gw{i + 1}",
                          gws[i].node if i < len(gws) else f"gw{i + 1}", unit=UNITS["gateway"], address=u.rstrip("/"))
                for i, u in enumerate(gateway_urls)]
        self.components = comps

    def orchestrator_at(self, raft_address: Optional[str]) -> Optional[Component]:
        if not raft_address:
            return None
        host = raft_address.rsplit(":", 1)[0]
        for c in self.of("orchestrator"):
            if host in (c.node, c.address):
                return c
        return None

    # ---- commands on nodes -----------------------------------------------------------------
    def remote(self, node: str, cmd: str, timeout: float = 60, check: bool = True) -> tuple[int, str]:
        raise NotImplementedError

    def ssh_argv(self, node: str) -> list[str]:
        raise NotImplementedError

    def executions(self, history, since: float):
        nodes = sorted({c.node for c in self.of("worker")})
        return JournalFollow(nodes, self.ssh_argv, history, since).start()

    @staticmethod
    def _units(c: Component) -> str:
        """The unit for a shell command line. A pattern (the Python workers' template) is
        expanded to the loaded instances, stopped ones included, because `systemctl start`
        with a pattern only matches units that are running."""
        if "*" not in c.unit:
            return shlex.quote(c.unit)
        return (f"$(systemctl list-units --all --plain --no-legend --type=service {shlex.quote(c.unit)}"
                f" | awk '{{print $1}}')")

    def _systemctl(self, c: Component, *args: str) -> None:
        self.remote(c.node, "systemctl " + " ".join(shlex.quote(a) for a in args) + " " + self._units(c))

    def crash(self, c: Component) -> None:
        # SIGKILL to every process of the unit; the stop right after cancels systemd's automatic
        # restart, so the service stays down until the drill starts it again.
        u = self._units(c)
        self.remote(c.node, f"systemctl kill -s KILL {u}; systemctl stop {u}")

    def stop(self, c: Component) -> None:
        self._systemctl(c, "stop")

    def start(self, c: Component) -> None:
        self._systemctl(c, "start")

    def restart(self, c: Component) -> None:
        self._systemctl(c, "restart")

    def pause(self, c: Component) -> None:
        self._systemctl(c, "kill", "-s", "STOP")

    def resume(self, c: Component) -> None:
        self._systemctl(c, "kill", "-s", "CONT")

    def rabbit_running(self, node: str) -> Optional[bool]:
        try:
            code, _ = self.remote(node, "rabbitmq-diagnostics -q check_running", timeout=30, check=False)
        except Exception:
            return None
        return code == 0

    def extra_health(self) -> list[str]:
        """The broker's own view: every node running, no partition."""
        import json
        for node in self.nodes("rabbitmq"):
            try:
                code, out = self.remote(node, "rabbitmqctl -q cluster_status --formatter json", timeout=30, check=False)
            except Exception:
                continue
            if code != 0:
                continue
            try:
                st = json.loads(out)
            except ValueError:
                continue
            reasons = []
            running = st.get("running_nodes") or []
            disk = st.get("disk_nodes") or []
            if len(running) < len(self.nodes("rabbitmq")):
                reasons.append(f"RabbitMQ runs {len(running)} of {len(self.nodes('rabbitmq'))} nodes "
                               f"(running: {', '.join(running)}; members: {', '.join(disk)})")
            parts = st.get("partitions") or {}
            if parts:
                reasons.append(f"RabbitMQ reports partitions: {parts}")
            return reasons
        return ["no RabbitMQ node answered `rabbitmqctl cluster_status`"]


class LabTarget(InventoryTarget):
    kind = "lab"
    capabilities = frozenset({CRASH, STOP, PAUSE, POWER_CUT, PARTITION, NODE_PAUSE})

    def __init__(self, inventory_dir: Path, gateway_urls: Optional[list[str]] = None) -> None:
        super().__init__(inventory_dir, gateway_urls)
        from lab import control, faults, nodes, settings, state
        self.faults, self._nodes, self._lab_error = faults, nodes, control.LabError
        self.settings = settings.load()
        lab = state.load(self.settings.state_file)
        missing = [n for n in self.nodes() if n not in lab.names()]
        if missing:
            raise Refused(f"the lab has no node(s) {', '.join(missing)} that {inventory_dir} names; "
                          f"is the lab up (`python -m lab status`)?")

    def describe(self) -> str:
        return f"lab ({self.inventory_dir}): " + ", ".join(
            f"{n} [{'+'.join(sorted({c.role if c.role != 'worker' else c.lang for c in self.components if c.node == n}))}]"
            for n in self.nodes())

    def remote(self, node: str, cmd: str, timeout: float = 60, check: bool = True) -> tuple[int, str]:
        p = self.faults.run(node, ["sh", "-c", cmd], settings=self.settings, timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError(f"{node}: `{cmd}` exited {p.returncode}: {p.stderr.strip()[:300]}")
        return p.returncode, p.stdout

    def ssh_argv(self, node: str) -> list[str]:
        from lab import state
        addr = state.load(self.settings.state_file).get(node).address
        return self._nodes.ssh_command(self.settings, addr)

    def power_cut(self, node: str) -> None:
        self.faults.power_cut(node, self.settings)

    def boot(self, node: str) -> None:
        try:
            self.faults.start(node, self.settings, wait=True)
        except self._lab_error as e:
            # A node booted right after a power cut can find its old veth still there
            # ("Failed to add new veth interfaces ... File exists"); a second try a few
            # seconds later works. Said out loud, because it is the lab's flaw, not the app's.
            print(f"    {node}: boot failed ({e}); trying once more in 5 s", flush=True)
            time.sleep(5)
            self.faults.start(node, self.settings, wait=True)

    def shutdown(self, node: str) -> None:
        self.faults.shutdown(node, self.settings)

    def node_pause(self, node: str) -> None:
        self.faults.pause(node, self.settings)

    def node_resume(self, node: str) -> None:
        self.faults.resume(node, self.settings)

    def partition(self, side_a: list[str], side_b: list[str]) -> None:
        self.faults.partition_groups(side_a, side_b, self.settings)

    def heal_partitions(self) -> None:
        self.faults.heal(self.settings)


class SshTarget(InventoryTarget):
    """Real machines. Commands go through pyinfra's SSH connector, one connection per host,
    reconnected after a reboot."""

    kind = "ssh"
    capabilities = frozenset({CRASH, STOP, PAUSE, POWER_CUT, PARTITION})

    def __init__(self, inventory_dir: Path, gateway_urls: Optional[list[str]] = None) -> None:
        super().__init__(inventory_dir, gateway_urls)
        self._locks = {n: threading.Lock() for n in self.inv.hostvars}
        self._state = None

    def describe(self) -> str:
        return f"ssh ({self.inventory_dir}): {', '.join(self.nodes())}"

    def _pyinfra_host(self, node: str, fresh: bool = False):
        from pyinfra.api import Config, Inventory as PInventory, State
        from pyinfra.api.connect import connect_all
        if self._state is None or fresh:
            names = []
            for h in self.nodes():
                d = {"ssh_hostname": self.inv.address(h), "ssh_user": self.inv.var(h, "ansible_user", "root"),
                     "ssh_port": int(self.inv.var(h, "ansible_port", 22)),
                     "ssh_strict_host_key_checking": "off", "ssh_known_hosts_file": "/dev/null"}
                key = self.inv.var(h, "ansible_ssh_private_key_file")
                if key:
                    d["ssh_key"] = str(key)
                names.append((h, d))
            self._state = State(PInventory((names, {})), Config())
            connect_all(self._state)
        return self._state.inventory.get_host(node)

    def remote(self, node: str, cmd: str, timeout: float = 60, check: bool = True) -> tuple[int, str]:
        with self._locks.setdefault(node, threading.Lock()):
            for attempt in (1, 2):
                try:
                    host = self._pyinfra_host(node, fresh=attempt == 2)
                    if not host.connected:
                        host.connect()
                    ok, out = host.run_shell_command(cmd, _timeout=int(timeout), _success_exit_codes=[0])
                    code = 0 if ok else 1
                    if check and not ok:
                        raise RuntimeError(f"{node}: `{cmd}` failed: {out.stderr[:300]}")
                    return code, out.stdout
                except RuntimeError:
                    raise
                except Exception:
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    def ssh_argv(self, node: str) -> list[str]:
        argv = ["ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", "ConnectTimeout=5", "-o", "ServerAliveInterval=5", "-o", "BatchMode=yes"]
        key = self.inv.var(node, "ansible_ssh_private_key_file")
        if key:
            argv += ["-i", str(key)]
        return argv + ["-p", str(self.inv.var(node, "ansible_port", 22)),
                       f"{self.inv.var(node, 'ansible_user', 'root')}@{self.inv.address(node)}"]

    def power_cut(self, node: str) -> None:
        # sysrq 'b': reboot at once, without syncing or unmounting: the nearest a remote
        # command gets to pulling the plug. The SSH session dies with the machine.
        try:
            self.remote(node, "echo 1 > /proc/sys/kernel/sysrq; (sleep 0.2; echo b > /proc/sysrq-trigger) "
                              ">/dev/null 2>&1 &", timeout=10, check=False)
        except Exception:
            pass

    def boot(self, node: str, timeout: float = 300) -> None:
        """A real machine reboots by itself after a power cut: wait until SSH answers again."""
        end = time.time() + timeout
        while time.time() < end:
            p = subprocess.run(self.ssh_argv(node) + ["true"], capture_output=True, timeout=30,
                               stdin=subprocess.DEVNULL)
            if p.returncode == 0:
                self._state = None
                return
            time.sleep(2)
        raise RuntimeError(f"{node} did not come back within {timeout:.0f}s")

    def partition(self, side_a: list[str], side_b: list[str]) -> None:
        for mine, theirs in ((side_a, side_b), (side_b, side_a)):
            addrs = ", ".join(self.inv.address(h) for h in theirs)
            for h in mine:
                self.remote(h, f"nft add table inet {NFT_TABLE}; "
                               f"nft add chain inet {NFT_TABLE} in '{{ type filter hook input priority -10; }}'; "
                               f"nft add chain inet {NFT_TABLE} out '{{ type filter hook output priority -10; }}'; "
                               f"nft add rule inet {NFT_TABLE} in ip saddr '{{ {addrs} }}' drop; "
                               f"nft add rule inet {NFT_TABLE} out ip daddr '{{ {addrs} }}' drop")

    def heal_partitions(self) -> None:
        for h in self.nodes():
            self.remote(h, f"nft delete table inet {NFT_TABLE} 2>/dev/null || true", check=False)


def open_inventory(path: Path, backend: Optional[str] = None, gateway_urls: Optional[list[str]] = None) -> Target:
    inv = Inventory(path)
    kind = backend or ("lab" if inv.var(None, "taskforce_env") == "lab" else "ssh")
    return (LabTarget if kind == "lab" else SshTarget)(path, gateway_urls)
