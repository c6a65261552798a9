"""The lab cluster as the benchmark sees it: nodes from the inventory, commands over SSH,
systemd units started and stopped, CPU and memory read from the units' cgroups."""
from __future__ import annotations

import os
import secrets
import shlex
import threading
import time
from pathlib import Path
from typing import Iterable, Optional

import paramiko

from drills.targets.inventory import Inventory

BENCH_VHOST = "tfbench"
BENCH_USER = "tfbench"
# Units whose CPU time the report accounts for, by component name.
CORE_UNITS = {"rabbitmq": "rabbitmq-server.service", "orchestrator": "taskforce-orchestrator.service",
              "gateway": "taskforce-gateway.service"}
WORKER_UNITS = "taskforce-worker@*.service taskforce-worker-java.service"


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Lab:
    """One inventory's nodes. Commands run as root over the lab's SSH key, one persistent
    connection per node, so that polling a file costs milliseconds."""

    def __init__(self, inventory: Path) -> None:
        self.inv = Inventory(inventory)
        g = self.inv.groups
        self.cores: list[str] = g.get("rabbitmq", [])
        self.gateways: list[str] = g.get("gateways", [])
        self.workers: list[str] = g.get("workers_python", [])
        if not self.cores or not self.gateways or not self.workers:
            raise SystemExit(f"inventory {inventory} needs rabbitmq, gateways and workers_python hosts; "
                             "for the lab, run `make up` first")
        sec = self.inv.secrets()
        self.amqp_passwords: dict = sec.get("amqp_passwords") or {}
        self.token: str = (sec.get("api_tokens") or {}).get("admin", "")
        if not self.token:
            raise SystemExit(f"no api_tokens.admin in {self.inv.dir / '.secrets.yml'}: roll the cluster out first")
        self.key = str(self.inv.var(None, "ansible_ssh_private_key_file", "/var/lib/taskforce-lab/ssh/id_ed25519"))
        self._ssh: dict[str, paramiko.SSHClient] = {}
        self._lock = threading.Lock()

    # ---- addresses ---------------------------------------------------------------------------
    def address(self, node: str) -> str:
        return self.inv.address(node)

    def gateway_urls(self) -> list[str]:
        port = self.inv.var(self.gateways[0], "gateway_port", 8080)
        return [f"http://{self.address(h)}:{port}" for h in self.gateways]

    def amqp_hosts(self) -> list[str]:
        return [self.address(h) for h in self.cores]

    # ---- commands ----------------------------------------------------------------------------
    def _client(self, node: str) -> paramiko.SSHClient:
        with self._lock:
            c = self._ssh.get(node)
            if c is None or not c.get_transport() or not c.get_transport().is_active():
                c = paramiko.SSHClient()
                c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
                c.connect(self.address(node), username="root", key_filename=self.key, timeout=10,
                          allow_agent=False, look_for_keys=False)
                self._ssh[node] = c
            return c

    def run(self, node: str, cmd: str, check: bool = True, timeout: float = 120, stdin: Optional[bytes] = None) -> str:
        _, out, err = self._client(node).exec_command(cmd, timeout=timeout)
        if stdin is not None:
            out.channel.sendall(stdin)
            out.channel.shutdown_write()
        text = out.read().decode(errors="replace")
        rc = out.channel.recv_exit_status()
        if check and rc != 0:
            raise RuntimeError(f"{node}: `{cmd}` exited {rc}: {err.read().decode(errors='replace').strip()[-500:]}")
        return text

    def put(self, node: str, local: Path, remote: str) -> None:
        sftp = self._client(node).open_sftp()
        try:
            sftp.put(str(local), remote)
        finally:
            sftp.close()

    def read(self, node: str, remote: str) -> bytes:
        sftp = self._client(node).open_sftp()
        try:
            with sftp.open(remote, "rb") as f:
                f.prefetch()
                return f.read()
        except FileNotFoundError:
            return b""
        finally:
            sftp.close()

    def close(self) -> None:
        for c in self._ssh.values():
            c.close()
        self._ssh.clear()

    # ---- units -------------------------------------------------------------------------------
    def active_units(self, node: str, pattern: str) -> list[str]:
        out = self.run(node, f"systemctl list-units --state=active --plain --no-legend {pattern}", check=False)
        return [line.split()[0] for line in out.splitlines() if line.strip()]

    def systemctl(self, node: str, verb: str, units: Iterable[str]) -> None:
        units = list(units)
        if units:
            self.run(node, f"systemctl {verb} " + " ".join(shlex.quote(u) for u in units))

    def unit_readings(self, node: str, units: Iterable[str]) -> dict[str, dict]:
        """CPU seconds (the unit's cgroup, children included) and the main process's RSS, per unit.
        The cgroup's cpu.stat is under /sys/fs/cgroup on a unified hierarchy and under
        /sys/fs/cgroup/unified on a hybrid one (what the lab's nodes see on this host)."""
        units = list(units)
        if not units:
            return {}
        script = ("for u in " + " ".join(shlex.quote(u) for u in units) + "; do "
                  "cg=$(systemctl show -p ControlGroup --value \"$u\"); pid=$(systemctl show -p MainPID --value \"$u\"); "
                  "usec=$(cat /sys/fs/cgroup$cg/cpu.stat /sys/fs/cgroup/unified$cg/cpu.stat 2>/dev/null | awk '/^usage_usec/{print $2; exit}'); "
                  "rss=$(awk '/^VmRSS/{print $2}' /proc/$pid/status 2>/dev/null); "
                  "echo \"$u ${usec:--} ${rss:--}\"; done")
        out: dict[str, dict] = {}
        for line in self.run(node, script, check=False).splitlines():
            u, usec, rss = (line.split() + ["-", "-"])[:3]
            out[u] = {"cpu_s": None if usec == "-" else int(usec) / 1e6,
                      "rss_kib": None if rss in ("-", "") else int(rss)}
        return out

    def cpu(self, plan: dict[str, list[tuple[str, str]]]) -> dict[str, float]:
        """CPU seconds now, keyed 'node/component', for plan = {node: [(component, unit), ...]};
        the units of one component on one node add up."""
        out: dict[str, float] = {}
        for node, pairs in plan.items():
            got = self.unit_readings(node, [u for _, u in pairs])
            for comp, unit in pairs:
                v = (got.get(unit) or {}).get("cpu_s")
                if v is not None:
                    out[f"{node}/{comp}"] = out.get(f"{node}/{comp}", 0.0) + v
        return out

    # ---- the bench's own broker account ------------------------------------------------------
    def ensure_bench_vhost(self) -> str:
        """A vhost and user of the benchmark's own, with a password generated for this run; the
        TaskForce vhost and its users are left alone. Returns the password."""
        pw = "b" + secrets.token_urlsafe(24)   # never a leading dash: rabbitmqctl would read an option
        core = self.cores[0]
        self.run(core, f"rabbitmqctl -q list_vhosts | grep -qx {BENCH_VHOST} || rabbitmqctl -q add_vhost {BENCH_VHOST}")
        self.run(core, f"rabbitmqctl -q list_users | grep -q '^{BENCH_USER}\\b' "
                       f"&& rabbitmqctl -q change_password {BENCH_USER} {shlex.quote(pw)} "
                       f"|| rabbitmqctl -q add_user {BENCH_USER} {shlex.quote(pw)}")
        self.run(core, f"rabbitmqctl -q set_permissions -p {BENCH_VHOST} {BENCH_USER} '.*' '.*' '.*'")
        return pw

    # ---- processes, for py-spy on the host -------------------------------------------------------
    def host_pid(self, node: str, unit: str) -> Optional[int]:
        """The host's PID of a unit's main process inside a lab node (nspawn shares the host kernel)."""
        inner = self.run(node, f"systemctl show -p MainPID --value {unit}", check=False).strip()
        if not inner or inner == "0":
            return None
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                status = (d / "status").read_text()
                cg = (d / "cgroup").read_text()
            except OSError:
                continue
            if f"/{node}/" not in cg and not cg.rstrip().endswith(f"/{node}"):
                continue
            ns = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
            if ns and ns[-1] == inner and unit.split(".")[0] in cg:
                return int(d.name)
        return None


def environ_with_nofile(n: int = 8192) -> None:
    """Many open SSE streams need file descriptors; raise the soft limit up to the hard one."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n if hard == resource.RLIM_INFINITY else min(n, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
