"""A whole TaskForce cluster as plain processes on one host, for `make dev` and the
integration tests: one RabbitMQ (from the distro package) on loopback and a non-standard
port, 3 orchestrators, 2 gateways and 2 Python workers (optionally Java workers).

    python -m dev.cluster up [--dir .dev] [--port 5682]    # runs until Ctrl-C
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import httpx

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
RABBIT_SBIN = "/usr/lib/rabbitmq/bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def say(msg: str) -> None:
    print(f"[dev] {msg}", flush=True)


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict
    log: Path
    popen: Optional[subprocess.Popen] = None
    cwd: Path = REPO

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")
        self.popen = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                      cwd=self.cwd, start_new_session=True)

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive:
            os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.popen:
            self.popen.wait(10)

    def stop(self, timeout: float = 30) -> None:
        if not self.alive:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class Rabbit:
    base: Path
    port: int
    passwords: dict = field(default_factory=dict)
    dist_port: int = field(default_factory=free_port)

    @property
    def node(self) -> str:
        return f"tfdev{self.port}@localhost"

    def env(self) -> dict:
        e = dict(os.environ)
        e.update({
            "RABBITMQ_NODENAME": self.node, "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port), "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"), "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"), "HOME": str(self.base),
            "RABBITMQ_PID_FILE": str(self.base / "rabbit.pid"),
        })
        return e

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([f"{RABBIT_SBIN}/rabbitmqctl", "-n", self.node, *args], env=self.env(),
                              capture_output=True, text=True, check=check, timeout=120)

    def start(self) -> None:
        for d in ("mnesia", "log"):
            (self.base / d).mkdir(parents=True, exist_ok=True)
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            "cluster_partition_handling = pause_minority\n"
            "heartbeat = 10\nvm_memory_high_watermark.relative = 0.2\n"
            "disk_free_limit.absolute = 200MB\nlog.console = false\n")
        (self.base / "enabled_plugins").write_text("[].\n")
        cookie = self.base / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(16))
        os.chmod(cookie, 0o400)
        subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(self.base)], check=True)
        # cwd: Erlang drops crash dumps into its working directory
        self.proc = Proc("rabbitmq", [f"{RABBIT_SBIN}/rabbitmq-server"], self.env(), self.base / "server.out", cwd=self.base)
        self.proc.start()

    def await_startup(self, timeout: float = 120) -> None:
        # await_startup fails fast (exit 69) until the node has registered; retry until it waits.
        end = time.time() + timeout
        while True:
            r = self.ctl("await_startup", "--timeout", "60", check=False)
            if r.returncode == 0:
                return
            if time.time() > end or not self.proc.alive:
                raise RuntimeError(f"RabbitMQ {self.node} did not start: {r.stderr.strip()[-500:]}")
            time.sleep(1)

    def provision(self) -> dict:
        """vhost, one user per component, no guest: the same shape the rabbitmq role makes."""
        self.ctl("add_vhost", "taskforce", check=False)
        for user in ("gateway", "orchestrator", "worker", "admin"):
            # hex: a password starting with "-" would be read by rabbitmqctl as an option
            pw = self.passwords.setdefault(user, secrets.token_hex(16))
            self.ctl("delete_user", user, check=False)
            self.ctl("add_user", user, pw)
            self.ctl("set_permissions", "-p", "taskforce", user, ".*", ".*", ".*")
        self.ctl("delete_user", "guest", check=False)
        return self.passwords

    def stop_app(self) -> None:
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")

    def stop(self) -> None:
        self.ctl("stop", check=False)
        if getattr(self, "proc", None):
            self.proc.stop(30)


class DevCluster:
    def __init__(self, base: Path, amqp_port: int = 0, orchestrators: int = 3, gateways: int = 2,
                 workers: int = 2, worker_slots: int = 4, java_workers: int = 0, java_jar: Optional[str] = None) -> None:
        self.base = base
        self.amqp_port = amqp_port or free_port()
        self.n_orch, self.n_gw, self.n_workers, self.n_java = orchestrators, gateways, workers, java_workers
        self.worker_slots = worker_slots
        self.java_jar = java_jar or str(REPO / "build" / "taskforce-worker.jar")
        self.rabbit = Rabbit(base / "rabbitmq", self.amqp_port)
        self.procs: dict[str, Proc] = {}
        self.raft_ports = [free_port() for _ in range(orchestrators)]
        self.http_ports = [free_port() for _ in range(orchestrators)]
        self.gw_ports = [free_port() for _ in range(gateways)]
        self.internal = secrets.token_urlsafe(16)
        self.raft_password = secrets.token_urlsafe(16)
        self.tokens = {"admin": secrets.token_urlsafe(24), "client": secrets.token_urlsafe(24),
                       "reader": secrets.token_urlsafe(24)}

    # ---- config ------------------------------------------------------------------------------
    def _amqp(self, user: str) -> str:
        return (f'[amqp]\nhosts = ["127.0.0.1:{self.amqp_port}"]\nvhost = "taskforce"\nuser = "{user}"\n'
                f'password = "{self.rabbit.passwords[user]}"\nheartbeat_s = 10\n')

    def _write_configs(self) -> None:
        import hashlib
        cfgdir = self.base / "etc"
        cfgdir.mkdir(parents=True, exist_ok=True)
        scopes = {"admin": ["submit", "read", "admin"], "client": ["submit", "read"], "reader": ["read"]}
        (cfgdir / "tokens.toml").write_text("".join(
            f'[[token]]\nname = "{n}"\nsha256 = "{hashlib.sha256(t.encode()).hexdigest()}"\nscopes = {json.dumps(scopes[n])}\n'
            for n, t in self.tokens.items()))
        for i in range(self.n_orch):
            self.write_orch_config(i, [a for j, a in enumerate(self.raft_addrs) if j != i])
        orchs = self.api_urls()
        for i in range(self.n_gw):
            (cfgdir / f"gw{i + 1}.toml").write_text(
                f'node = "gw{i + 1}"\n' + self._amqp("gateway") +
                f'[gateway]\nlisten = "127.0.0.1:{self.gw_ports[i]}"\norchestrators = {json.dumps(orchs)}\n'
                f'internal_token = "{self.internal}"\ntokens_file = "{cfgdir}/tokens.toml"\n')
        for i in range(self.n_workers + self.n_java):
            # Each language also serves a queue of its own: the demo types only it can run.
            own = "python" if i < self.n_workers else "java"
            (cfgdir / f"worker{i + 1}.toml").write_text(
                f'node = "w{i + 1}"\n' + self._amqp("worker") +
                f'[worker]\nqueues = ["default", "{own}"]\nslots = {self.worker_slots}\nprefetch = 2\ngrace_s = 10\n')

    @property
    def raft_addrs(self) -> list[str]:
        return [f"127.0.0.1:{p}" for p in self.raft_ports]

    def api_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.http_ports]

    def write_orch_config(self, i: int, peers: list[str]) -> Path:
        """orchN.toml for orchestrator index i, with the given Raft peers."""
        path = self.base / "etc" / f"orch{i + 1}.toml"
        path.write_text(
            f'node = "orch{i + 1}"\n' + self._amqp("orchestrator") +
            f'[raft]\nself = "{self.raft_addrs[i]}"\npeers = {json.dumps(peers)}\n'
            f'password = "{self.raft_password}"\ndata_dir = "{self.base}/raft{i + 1}"\n'
            f'http_listen = "127.0.0.1:{self.http_ports[i]}"\ninternal_token = "{self.internal}"\n'
            f'backoff_base_s = 0.5\nbackoff_max_s = 5\nheartbeat_grace_s = 6\n')
        return path

    def new_orch(self) -> int:
        """Ports for one more orchestrator, and its index; start it with start_orch. It is not
        a Raft member until the leader adds it."""
        self.raft_ports.append(free_port())
        self.http_ports.append(free_port())
        self.n_orch += 1
        return self.n_orch - 1

    def start_orch(self, i: int, peers: list[str]) -> Proc:
        """(Re)start orchestrator index i with a config naming these Raft peers."""
        name = f"orch{i + 1}"
        if name in self.procs:
            self.procs[name].stop()
        self.write_orch_config(i, peers)
        p = self._proc(name, ["orchestrator"], f"{name}.toml")
        p.start()
        return p

    def _proc(self, name: str, args: list[str], cfg: str) -> Proc:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        p = Proc(name, [PY, "-m", "taskforce.cli", *args, "--config", str(self.base / "etc" / cfg)], env,
                 self.base / "logs" / f"{name}.log")
        self.procs[name] = p
        return p

    # ---- life cycle ----------------------------------------------------------------------------
    def up(self, progress=say) -> "DevCluster":
        t0 = time.time()
        if self.base.exists():
            shutil.rmtree(self.base)
        self.base.mkdir(parents=True)
        progress(f"rabbitmq on 127.0.0.1:{self.amqp_port}")
        self.rabbit.start()
        self.rabbit.await_startup()
        self.rabbit.provision()
        self._write_configs()
        for i in range(self.n_orch):
            self._proc(f"orch{i + 1}", ["orchestrator"], f"orch{i + 1}.toml").start()
        for i in range(self.n_gw):
            self._proc(f"gw{i + 1}", ["gateway"], f"gw{i + 1}.toml").start()
        for i in range(self.n_workers):
            self._proc(f"worker{i + 1}", ["worker"], f"worker{i + 1}.toml").start()
        for i in range(self.n_java):
            n = self.n_workers + i + 1
            p = Proc(f"java{i + 1}", ["java", "-Xmx128m", "-jar", self.java_jar, "--config",
                                     str(self.base / "etc" / f"worker{n}.toml")], dict(os.environ),
                     self.base / "logs" / f"java{i + 1}.log")
            self.procs[p.name] = p
            p.start()
        progress(f"{self.n_orch} orchestrators, {self.n_gw} gateways, {self.n_workers} python + {self.n_java} java workers started")
        self.wait_leader()
        self.wait_ready()
        self.wait_workers(self.n_workers + self.n_java)
        progress(f"cluster ready in {time.time() - t0:.1f}s")
        return self

    def down(self) -> None:
        for p in self.procs.values():
            p.signal(signal.SIGKILL)
        for p in self.procs.values():
            if p.popen:
                try:
                    p.popen.wait(10)
                except subprocess.TimeoutExpired:
                    pass
        self.rabbit.stop()

    # ---- waiting ---------------------------------------------------------------------------------
    def client(self, gw: int = 0, token: str = "admin") -> httpx.Client:
        return httpx.Client(base_url=self.gw_url(gw), headers={"Authorization": f"Bearer {self.tokens[token]}"},
                            timeout=15.0)

    def gw_url(self, i: int = 0) -> str:
        return f"http://127.0.0.1:{self.gw_ports[i]}"

    def orch_status(self, i: int) -> Optional[dict]:
        try:
            r = httpx.get(f"http://127.0.0.1:{self.http_ports[i]}/status",
                          headers={"Authorization": f"Bearer {self.internal}"}, timeout=2)
            return r.json()
        except (httpx.HTTPError, ValueError):
            return None

    def leader(self) -> Optional[int]:
        """Index of the orchestrator that is leader with a committed epoch, if exactly one."""
        found = []
        for i in range(self.n_orch):
            p = self.procs.get(f"orch{i + 1}")
            if p is None or not p.alive:
                continue
            st = self.orch_status(i)
            if st and st["state"] == "leader" and st["schedule"]["leader"] == st["self"]:
                found.append(i)
        return found[0] if len(found) == 1 else None

    def wait_leader(self, timeout: float = 60) -> int:
        end = time.time() + timeout
        while time.time() < end:
            i = self.leader()
            if i is not None:
                return i
            time.sleep(0.1)
        raise TimeoutError("no single Raft leader with a committed epoch")

    def wait_ready(self, timeout: float = 60) -> None:
        end = time.time() + timeout
        for i in range(self.n_gw):
            while True:
                try:
                    if httpx.get(self.gw_url(i) + "/readyz", timeout=3).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.time() > end:
                    raise TimeoutError(f"gateway {i + 1} not ready")
                time.sleep(0.2)

    def wait_workers(self, n: int, timeout: float = 60) -> None:
        if n <= 0:
            return
        end = time.time() + timeout
        with self.client() as c:
            while time.time() < end:
                ws = c.get("/v1/workers").json()["workers"]
                if sum(1 for w in ws if w["alive"]) >= n:
                    return
                time.sleep(0.3)
        raise TimeoutError(f"fewer than {n} workers registered")

    def wait_terminal(self, ids: list[str], timeout: float = 120, gw: int = 0) -> dict[str, dict]:
        """Poll until every id is terminal; returns id -> record."""
        pending = set(ids)
        out: dict[str, dict] = {}
        end = time.time() + timeout
        with self.client(gw) as c:
            while pending and time.time() < end:
                cursor = None
                while True:
                    params = {"limit": 1000}
                    if cursor:
                        params["cursor"] = cursor
                    r = c.get("/v1/jobs", params=params)
                    if r.status_code != 200:
                        break
                    body = r.json()
                    for rec in body["jobs"]:
                        if rec["id"] in pending and rec["status"] in ("succeeded", "dead", "cancelled"):
                            out[rec["id"]] = rec
                            pending.discard(rec["id"])
                    cursor = body.get("next_cursor")
                    if not cursor:
                        break
                if pending:
                    time.sleep(0.5)
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["up"])
    ap.add_argument("--dir", default=str(REPO / ".dev"))
    ap.add_argument("--port", type=int, default=5682)
    ap.add_argument("--java", type=int, default=0, help="Java workers too (needs build/taskforce-worker.jar)")
    a = ap.parse_args()
    c = DevCluster(Path(a.dir), a.port, java_workers=a.java)
    try:
        c.up()
        for i in range(c.n_gw):
            say(f"gateway {i + 1}: {c.gw_url(i)}")
        say(f"export TASKFORCE_URL={c.gw_url(0)} TASKFORCE_TOKEN={c.tokens['admin']}")
        say(f"logs in {c.base / 'logs'}; Ctrl-C stops everything")
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        say("stopping")
        c.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
