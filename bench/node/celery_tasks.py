"""The Celery side of the benchmark: the app, configured as a careful user would for the
guarantees TaskForce gives (quorum queues, acks late, reject on worker loss, publisher
confirms), and one no-op task.

Both the load driver (on the controller) and the workers (on the worker nodes, under
`systemd-run`) import this module; settings come from BENCH_* variables."""
from __future__ import annotations

import os
import time

from celery import Celery
from kombu import Queue

QUEUE = "tfbench.celery"


def make_app(hosts: list[str], user: str, password: str, vhost: str) -> Celery:
    urls = ";".join(f"amqp://{user}:{password}@{h}:5672/{vhost}" for h in hosts)
    app = Celery("tfbench", broker=urls)
    app.conf.update(
        task_queues=[Queue(QUEUE, queue_arguments={"x-queue-type": "quorum"})],
        task_default_queue=QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options={"confirm_publish": True},
        broker_connection_retry_on_startup=True,
        broker_pool_limit=32,   # the paced load calls send_task from 16 threads at once
        # Quorum queues refuse global QoS; Celery 5.5 detects them and uses per-consumer QoS.
        worker_detect_quorum_queues=True,
        worker_prefetch_multiplier=int(os.environ.get("BENCH_PREFETCH_MULTIPLIER", "4")),
        worker_hijack_root_logger=False,
    )
    return app


def _from_env() -> Celery:
    if "BENCH_AMQP_HOSTS" not in os.environ:
        return Celery("tfbench")
    return make_app(os.environ["BENCH_AMQP_HOSTS"].split(","), os.environ["BENCH_USER"],
                    os.environ["BENCH_PASSWORD"], os.environ["BENCH_VHOST"])


app = _from_env()
_fd = None


@app.task(name="bench.noop")
def noop(jid: str, t_submit: float) -> None:
    global _fd
    t_start = time.time()
    if _fd is None:   # one per pool process, opened after the fork
        _fd = os.open(os.environ["BENCH_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    # A line under PIPE_BUF with O_APPEND is one atomic write, whichever process writes it.
    os.write(_fd, f"{jid} {t_submit:.6f} {t_start:.6f} {time.time():.6f}\n".encode())
