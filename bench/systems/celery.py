"""Celery 5.x on the same broker, configured as bench/node/celery_tasks.py says (quorum
queue, acks late, reject on worker lost, publisher confirms, a no-op task), in a vhost and
user of the benchmark's own. Its workers run on the same worker nodes, with as many pool
processes as TaskForce has slots there. Celery has no batch submit: each client thread
calls send_task, which waits for that message's confirm."""
from __future__ import annotations

import threading
import time

from ..lab import BENCH_USER, BENCH_VHOST, Lab
from ..node.celery_tasks import QUEUE, make_app
from . import FileStamps, System, new_id, node_env_file, run_unit
from .nodes import VENV


class CelerySystem(System):
    name = "celery"
    clients = 6
    batch = 10

    def __init__(self, lab: Lab, password: str, concurrency: int = 4) -> None:
        super().__init__(lab)
        self.password, self.concurrency = password, concurrency
        self.app = make_app(lab.amqp_hosts(), BENCH_USER, password, BENCH_VHOST)
        self.files = FileStamps(lab, lab.workers)
        self.units: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def setup(self) -> None:
        with self.app.connection_for_write() as conn:
            ch = conn.default_channel
            for q in self.app.conf.task_queues:
                q.bind(ch).declare()
            ch.queue_purge(QUEUE)

    def begin(self, tag: str) -> None:
        self.files.begin(tag)

    def start_consumers(self, plan: dict[str, int]) -> None:
        for node, count in plan.items():
            self.units[node] = []
            for i in range(count):
                env = node_env_file(self.lab, node, f"celery-{i}", {
                    "BENCH_AMQP_HOSTS": ",".join(self.lab.amqp_hosts()), "BENCH_USER": BENCH_USER,
                    "BENCH_PASSWORD": self.password, "BENCH_VHOST": BENCH_VHOST,
                    "BENCH_LOG": self.files.path(node, i), "HOME": "/var/tmp/tfbench"})
                unit = f"tfbench-celery-{i}"
                run_unit(self.lab, node, unit, env,
                         f"{VENV}/bin/celery -A celery_tasks worker -P prefork -c {self.concurrency} -Q {QUEUE} "
                         f"-n bench{i}@{node} --without-gossip --without-mingle --without-heartbeat -l warning")
                self.units[node].append(unit)
        time.sleep(5)   # the pool forks and consumers attach

    def stop_consumers(self) -> None:
        for node, units in self.units.items():
            self.lab.systemctl(node, "stop", units)
        self.units = {}

    def submit_one(self, client: int) -> tuple[str, float]:
        jid, t = new_id(), time.time()
        self.app.send_task("bench.noop", args=[jid, t], queue=QUEUE)
        return jid, t

    def completed(self) -> int:
        return self.files.completed()

    def stamps(self) -> dict[str, tuple[float, float]]:
        self.files.end()
        return self.files.stamps()

    def cpu_plan(self) -> dict[str, list[tuple[str, str]]]:
        plan = {c: [("rabbitmq", "rabbitmq-server.service")] for c in self.lab.cores}
        for node, units in self.units.items():
            plan.setdefault(node, []).extend(("worker", f"{u}.service") for u in units)
        return plan

    def teardown(self) -> None:
        self.files.end()
        self.app.close()
