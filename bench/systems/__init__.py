"""The systems under test behind one small interface, so the driver treats them alike.

A system runs consumers on the worker nodes (`start_consumers`), submits from the controller
(`submit_batch` under saturation, `submit_one` when paced), counts completions as they happen
(`completed`) and, afterwards, reports each job's (start, done) times (`stamps`). Clocks
agree: the lab's nodes are containers on the controller's own kernel."""
from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Optional

from ..lab import Lab

NODE_DIR = "/opt/tfbench"
LOG_DIR = "/var/tmp/tfbench"


class System:
    name = "?"
    clients = 1          # submitting threads under saturation
    batch = 1            # jobs per submit_batch call

    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def setup(self) -> None: ...
    def start_consumers(self, plan: dict[str, int]) -> None: ...
    def stop_consumers(self) -> None: ...
    def teardown(self) -> None: ...
    def begin(self, tag: str) -> None: ...

    def submit_batch(self, client: int, n: int) -> list[tuple[str, float]]:
        return [self.submit_one(client) for _ in range(n)]

    def submit_one(self, client: int) -> tuple[str, float]:
        raise NotImplementedError

    def completed(self) -> int:
        raise NotImplementedError

    def stamps(self) -> dict[str, tuple[float, float]]:
        raise NotImplementedError

    def cpu_plan(self) -> dict[str, list[tuple[str, str]]]:
        """{node: [(component, unit)]} for the CPU accounting of this system's run."""
        raise NotImplementedError


def new_id() -> str:
    return uuid.uuid4().hex


class FileStamps:
    """Completions recorded by consumers on the worker nodes, a line per job
    (`id t_submit t_start t_done`) in LOG_DIR/<tag>-*.log; counted by polling over SSH."""

    def __init__(self, lab: Lab, nodes: list[str]) -> None:
        self.lab, self.nodes = lab, nodes
        self.tag = ""
        self._count = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def begin(self, tag: str) -> None:
        self.end()
        self.tag = tag
        self._count = 0
        for n in self.nodes:
            self.lab.run(n, f"mkdir -p {LOG_DIR} && chown taskforce {LOG_DIR} && rm -f {LOG_DIR}/{tag}-*.log")
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name=f"count-{tag}", daemon=True)
        self._thread.start()

    def path(self, node: str, i: int) -> str:
        return f"{LOG_DIR}/{self.tag}-{node}-{i}.log"

    def _poll(self) -> None:
        while not self._stop.is_set():
            total = 0
            try:
                for n in self.nodes:
                    out = self.lab.run(n, f"cat {LOG_DIR}/{self.tag}-*.log 2>/dev/null | wc -l", check=False)
                    total += int(out.strip() or 0)
                self._count = total
            except Exception:
                pass
            self._stop.wait(0.25)

    def completed(self) -> int:
        return self._count

    def end(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
            self._thread = None

    def stamps(self) -> dict[str, tuple[float, float]]:
        out: dict[str, tuple[float, float]] = {}
        for n in self.nodes:
            text = self.lab.run(n, f"cat {LOG_DIR}/{self.tag}-*.log 2>/dev/null", check=False)
            for line in text.splitlines():
                parts = line.split()
                if len(parts) == 4:
                    out[parts[0]] = (float(parts[2]), float(parts[3]))
        return out


def node_env_file(lab: Lab, node: str, name: str, env: dict[str, str]) -> str:
    """A root:taskforce 0640 environment file for a transient unit (it holds the bench password)."""
    path = f"{NODE_DIR}/{name}.env"
    body = "".join(f"{k}={v}\n" for k, v in env.items())
    lab.run(node, f"install -d -m 0755 {NODE_DIR} && umask 027 && cat > {path} && chgrp taskforce {path} && chmod 0640 {path}",
            stdin=body.encode())
    return path


def run_unit(lab: Lab, node: str, unit: str, env_file: str, argv: str) -> None:
    lab.run(node, f"systemctl reset-failed {unit} 2>/dev/null; systemctl stop {unit} 2>/dev/null; "
                  f"systemd-run --quiet --unit {unit} -p User=taskforce -p Group=taskforce "
                  f"-p EnvironmentFile={env_file} -p WorkingDirectory={NODE_DIR} -p KillMode=control-group "
                  f"-p TimeoutStopSec=15 {argv}", check=True)


class UnitConsumers(System):
    """A system whose consumers run on the worker nodes as transient units of the bench's own
    (`tfbench-<unit_prefix>-<i>`) and record each completion in a stamp file."""
    unit_prefix = "?"
    cpu_role = "consumer"     # the component their CPU counts under

    def __init__(self, lab: Lab) -> None:
        super().__init__(lab)
        self.files = FileStamps(lab, lab.workers)
        self.units: dict[str, list[str]] = {}

    def consumer_env(self, node: str, i: int) -> dict[str, str]:
        raise NotImplementedError

    def consumer_argv(self, node: str, i: int) -> str:
        raise NotImplementedError

    def begin(self, tag: str) -> None:
        self.files.begin(tag)

    def start_consumers(self, plan: dict[str, int]) -> None:
        for node, count in plan.items():
            self.units[node] = []
            for i in range(count):
                unit = f"tfbench-{self.unit_prefix}-{i}"
                env = node_env_file(self.lab, node, f"{self.unit_prefix}-{i}", self.consumer_env(node, i))
                run_unit(self.lab, node, unit, env, self.consumer_argv(node, i))
                self.units[node].append(unit)

    def stop_consumers(self) -> None:
        for node, units in self.units.items():
            self.lab.systemctl(node, "stop", units)
        self.units = {}

    def completed(self) -> int:
        return self.files.completed()

    def stamps(self) -> dict[str, tuple[float, float]]:
        self.files.end()
        return self.files.stamps()

    def cpu_plan(self) -> dict[str, list[tuple[str, str]]]:
        plan = {c: [("rabbitmq", "rabbitmq-server.service")] for c in self.lab.cores}
        for node, units in self.units.items():
            plan.setdefault(node, []).extend((self.cpu_role, f"{u}.service") for u in units)
        return plan


def wait_for(pred, timeout: float, every: float = 0.2) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(every)
    return pred()


def here() -> Path:
    return Path(__file__).resolve().parent.parent
