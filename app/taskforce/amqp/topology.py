"""The RabbitMQ topology, declared idempotently by whichever component starts first.

Every durable queue is a quorum queue. Quorum queues reject x-max-priority before
RabbitMQ 4, so priority is carried by one queue per lane (see model.lane_for).
"""
from __future__ import annotations

from ..model import LANES, lane_queue

COMMANDS = "tf.commands"
JOBS_X = "tf.jobs"
WORKER_EVENTS_X = "tf.worker-events"
ORCH_EVENTS_Q = "tf.orchestrator.events"
EVENTS_X = "tf.events"
CONTROL_X = "tf.control"
DLX = "tf.dlx"
DEAD_Q = "tf.dead"
DELIVERY_LIMIT = 5

QUORUM = {"x-queue-type": "quorum"}


def lane_queue_args() -> dict:
    """Arguments of a lane queue; the Java worker declares the same ones."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": DLX,
        "x-dead-letter-routing-key": DEAD_Q,
    }


def declare_core(ch) -> None:
    """Exchanges and the shared queues. Safe to call from every component, every start."""
    ch.exchange_declare(JOBS_X, "direct", durable=True)
    ch.exchange_declare(WORKER_EVENTS_X, "topic", durable=True)
    ch.exchange_declare(EVENTS_X, "topic", durable=True)
    ch.exchange_declare(CONTROL_X, "fanout", durable=True)
    ch.exchange_declare(DLX, "direct", durable=True)
    ch.queue_declare(DEAD_Q, durable=True, arguments=QUORUM)
    ch.queue_bind(DEAD_Q, DLX, routing_key=DEAD_Q)
    ch.queue_declare(COMMANDS, durable=True, arguments=QUORUM)
    ch.queue_declare(ORCH_EVENTS_Q, durable=True, arguments=QUORUM)
    ch.queue_bind(ORCH_EVENTS_Q, WORKER_EVENTS_X, routing_key="#")


def lane_names(queue: str) -> list[str]:
    return [lane_queue(queue, lane) for lane in LANES]


def declare_lanes(ch, queue: str) -> list[str]:
    names = []
    for name in lane_names(queue):
        ch.queue_declare(name, durable=True, arguments=lane_queue_args())
        ch.queue_bind(name, JOBS_X, routing_key=name)
        names.append(name)
    return names
