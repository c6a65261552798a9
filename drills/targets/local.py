"""The one-host back end: the dev cluster (dev/cluster.py) of plain processes.

Faults are signals to process groups: kill -9 (a crash, or a power cut of a worker: the group
takes the handler children with it), SIGTERM (a clean stop), SIGSTOP/SIGCONT (a pause).
There is one machine, so there are no partitions and no power cuts of a whole node; drills
that need them are refused here.
"""
from __future__ import annotations

import shutil
import signal
from pathlib import Path
from typing import Optional

from ..executions import LogTail
from .base import CRASH, PAUSE, STOP, Component, Refused, Target

DEFAULT_DIR = Path("/tmp/drills-dev")


class LocalTarget(Target):
    kind = "local"
    capabilities = frozenset({CRASH, STOP, PAUSE})

    def __init__(self, base: Path = DEFAULT_DIR, java: Optional[bool] = None, workers: int = 2,
                 slots: int = 4) -> None:
        super().__init__()
        from dev.cluster import DevCluster, REPO   # the repo root must be on sys.path
        jar = REPO / "build" / "taskforce-worker.jar"
        if java is None:
            java = jar.exists() and shutil.which("java") is not None
        elif java and not jar.exists():
            raise Refused(f"--java needs {jar}; build it with `make java-build`")
        self.base = base
        self.cluster_ = DevCluster(base, workers=workers, worker_slots=slots, java_workers=1 if java else 0)
        self.up_ = False

    # ---- life cycle ------------------------------------------------------------------------
    def up(self) -> "LocalTarget":
        for attempt in (1, 2):
            c = self.cluster_
            try:
                c.up(progress=lambda m: print(f"[local] {m}", flush=True))
                break
            except Exception as e:
                c.down()
                if attempt == 2:
                    raise Refused(f"the dev cluster did not start: {e!r}") from e
                # A fresh cluster draws fresh secrets and ports; dev/cluster.py can fail on an
                # unlucky draw (a RabbitMQ password that starts with '-').
                print(f"[local] the dev cluster did not start ({e!r}); trying once more", flush=True)
                self.cluster_ = type(c)(self.base, workers=c.n_workers, worker_slots=c.worker_slots,
                                        java_workers=c.n_java)
        self.up_ = True
        c = self.cluster_
        self.token = c.tokens["admin"]
        comps: list[Component] = [Component("rabbitmq", "rabbitmq", "rabbit", address=f"127.0.0.1:{c.amqp_port}")]
        for i in range(c.n_orch):
            comps.append(Component("orchestrator", f"orch{i + 1}", f"orch{i + 1}",
                                   address=f"127.0.0.1:{c.raft_ports[i]}"))
        for i in range(c.n_gw):
            comps.append(Component("gateway", f"gw{i + 1}", f"gw{i + 1}", address=c.gw_url(i)))
        # Worker node names are the ones in their configs (dev/cluster.py: w1, w2, ...).
        for i in range(c.n_workers):
            comps.append(Component("worker", f"worker{i + 1}", f"w{i + 1}", lang="python"))
        for i in range(c.n_java):
            comps.append(Component("worker", f"java{i + 1}", f"w{c.n_workers + i + 1}", lang="java"))
        self.components = comps
        return self

    def down(self) -> None:
        if self.up_:
            self.cluster_.down()
            self.up_ = False
        self.close()

    def describe(self) -> str:
        c = self.cluster_
        return (f"local dev cluster in {self.base}: RabbitMQ 1 node, {c.n_orch} orchestrators, {c.n_gw} gateways, "
                f"{c.n_workers} Python + {c.n_java} Java workers ({c.worker_slots} slots each)")

    def executions(self, history, since: float):
        return LogTail(self.base / "logs", history).start()

    # ---- faults ----------------------------------------------------------------------------
    def _proc(self, c: Component):
        if c.role == "rabbitmq":
            return self.cluster_.rabbit.proc
        return self.cluster_.procs[c.name]

    def crash(self, c: Component) -> None:
        self._proc(c).kill()

    def stop(self, c: Component) -> None:
        if c.role == "rabbitmq":
            self.cluster_.rabbit.stop()
        else:
            self._proc(c).stop(60)

    def start(self, c: Component) -> None:
        if c.role == "rabbitmq":
            r = self.cluster_.rabbit
            r.start()
            r.await_startup()
            return
        p = self._proc(c)
        if p.alive:
            return
        p.start()

    def pause(self, c: Component) -> None:
        self._proc(c).signal(signal.SIGSTOP)

    def resume(self, c: Component) -> None:
        self._proc(c).signal(signal.SIGCONT)
