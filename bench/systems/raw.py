"""The broker's own ceiling: publish-with-confirm (pipelined, as a careful publisher does)
then consume-and-ack, of job-sized messages on one quorum queue, with the same number of
consumer processes on the same worker nodes as the other systems. No scheduler, no events."""
from __future__ import annotations

import json
import threading
import time

import pika

from taskforce.amqp.confirms import ConfirmBatch
from taskforce.amqp.connection import props

from ..lab import BENCH_USER, BENCH_VHOST, Lab
from . import UnitConsumers, new_id
from .nodes import VENV

QUEUE = "tfbench.raw"
JOB_BYTES = 300   # about the size of a TaskForce job message


class Raw(UnitConsumers):
    name = "raw"
    unit_prefix = "raw"
    clients = 2
    batch = 50

    def __init__(self, lab: Lab, password: str, prefetch: int = 8) -> None:
        super().__init__(lab)
        self.password, self.prefetch = password, prefetch
        self._local = threading.local()
        self._conns: list[pika.BlockingConnection] = []

    def _conn(self, client: int) -> tuple[pika.BlockingConnection, ConfirmBatch]:
        c = getattr(self._local, "c", None)
        if c is None or not c[0].is_open:
            hosts = self.lab.amqp_hosts()
            h = hosts[client % len(hosts)]
            conn = pika.BlockingConnection(pika.ConnectionParameters(
                h, 5672, BENCH_VHOST, pika.PlainCredentials(BENCH_USER, self.password), heartbeat=30))
            c = (conn, ConfirmBatch(conn))
            self._local.c = c
            self._conns.append(conn)
        return c

    def setup(self) -> None:
        # Every run opens new connections in every thread: one kept from the previous run sat
        # unserviced meanwhile (a blocking connection only does I/O when called), and the
        # broker has dropped it for missed heartbeats.
        self._close_all()
        conn, _ = self._conn(0)
        ch = conn.channel()
        ch.queue_declare(QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
        ch.queue_purge(QUEUE)
        ch.close()

    def consumer_env(self, node: str, i: int) -> dict[str, str]:
        return {"BENCH_AMQP_HOSTS": ",".join(self.lab.amqp_hosts()), "BENCH_USER": BENCH_USER,
                "BENCH_PASSWORD": self.password, "BENCH_VHOST": BENCH_VHOST, "BENCH_QUEUE": QUEUE,
                "BENCH_PREFETCH": str(self.prefetch), "BENCH_LOG": self.files.path(node, i)}

    def consumer_argv(self, node: str, i: int) -> str:
        return f"{VENV}/bin/python raw_consumer.py"

    def _body(self, jid: str, t: float) -> bytes:
        msg = {"v": 1, "id": jid, "t": t, "type": "noop", "payload": {}, "queue": "default", "priority": 5}
        pad = JOB_BYTES - len(json.dumps(msg)) - 10
        msg["pad"] = "p" * max(0, pad)
        return json.dumps(msg, separators=(",", ":")).encode()

    def submit_batch(self, client: int, n: int) -> list[tuple[str, float]]:
        conn, pub = self._conn(client)
        out = []
        for _ in range(n):
            jid, t = new_id(), time.time()
            pub.publish("", QUEUE, self._body(jid, t), props())
            out.append((jid, t))
        pub.wait(30)
        return out

    def submit_one(self, client: int) -> tuple[str, float]:
        return self.submit_batch(client, 1)[0]

    def _close_all(self) -> None:
        for conn in self._conns:
            try:
                conn.close()
            except Exception:
                pass   # a connection of another thread, already gone
        self._conns.clear()
        self._local = threading.local()

    def teardown(self) -> None:
        self.files.end()
        self._close_all()
