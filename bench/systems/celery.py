"""Celery 5.x on the same broker, configured as bench/node/celery_tasks.py says (quorum
queue, acks late, reject on worker lost, publisher confirms, a no-op task), in a vhost and
user of the benchmark's own. Its workers run on the same worker nodes, with as many pool
processes as TaskForce has slots there. Celery has no batch submit: each client thread
calls send_task, which waits for that message's confirm."""
from __future__ import annotations

import time

from ..lab import BENCH_USER, BENCH_VHOST, Lab
from ..node.celery_tasks import QUEUE, make_app
from . import UnitConsumers, new_id
from .nodes import VENV


class CelerySystem(UnitConsumers):
    name = "celery"
    unit_prefix = "celery"
    cpu_role = "worker"
    clients = 6
    batch = 10

    def __init__(self, lab: Lab, password: str, concurrency: int = 4) -> None:
        super().__init__(lab)
        self.password, self.concurrency = password, concurrency
        self.app = make_app(lab.amqp_hosts(), BENCH_USER, password, BENCH_VHOST)

    def setup(self) -> None:
        with self.app.connection_for_write() as conn:
            ch = conn.default_channel
            for q in self.app.conf.task_queues:
                q.bind(ch).declare()
            ch.queue_purge(QUEUE)

    def consumer_env(self, node: str, i: int) -> dict[str, str]:
        return {"BENCH_AMQP_HOSTS": ",".join(self.lab.amqp_hosts()), "BENCH_USER": BENCH_USER,
                "BENCH_PASSWORD": self.password, "BENCH_VHOST": BENCH_VHOST,
                "BENCH_LOG": self.files.path(node, i), "HOME": "/var/tmp/tfbench"}

    def consumer_argv(self, node: str, i: int) -> str:
        return (f"{VENV}/bin/celery -A celery_tasks worker -P prefork -c {self.concurrency} -Q {QUEUE} "
                f"-n bench{i}@{node} --without-gossip --without-mingle --without-heartbeat -l warning")

    def start_consumers(self, plan: dict[str, int]) -> None:
        super().start_consumers(plan)
        time.sleep(5)   # the pool forks and consumers attach

    def submit_one(self, client: int) -> tuple[str, float]:
        jid, t = new_id(), time.time()
        self.app.send_task("bench.noop", args=[jid, t], queue=QUEUE)
        return jid, t

    def teardown(self) -> None:
        self.files.end()
        self.app.close()
