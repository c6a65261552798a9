"""Connecting to whichever broker node answers, with backoff, and confirmed publishing."""
from __future__ import annotations

import json
import logging
import random
import time
from typing import Any, Callable, Optional

import pika
import pika.exceptions

from ..config import AmqpConfig, split_hostport

log = logging.getLogger(__name__)

CONNECT_ERRORS = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.StreamLostError,
    ConnectionError,
    OSError,
)


def parameters(cfg: AmqpConfig, name: str) -> list[pika.ConnectionParameters]:
    creds = pika.PlainCredentials(cfg.user, cfg.password)
    out = []
    for hp in cfg.hosts:
        host, port = split_hostport(hp, 5672)
        out.append(
            pika.ConnectionParameters(
                host=host,
                port=port,
                virtual_host=cfg.vhost,
                credentials=creds,
                heartbeat=cfg.heartbeat_s,
                blocked_connection_timeout=30,
                connection_attempts=1,
                socket_timeout=5,
                client_properties={"connection_name": name},
            )
        )
    return out


def connect(cfg: AmqpConfig, name: str, attempts: int = 1) -> pika.BlockingConnection:
    """Try every node in a shuffled order, `attempts` rounds, with exponential backoff between rounds."""
    delay = 0.2
    last: Optional[Exception] = None
    for round_ in range(attempts):
        params = parameters(cfg, name)
        random.shuffle(params)
        try:
            return pika.BlockingConnection(params)
        except CONNECT_ERRORS as e:
            last = e
            if round_ + 1 < attempts:
                time.sleep(delay + random.random() * delay)
                delay = min(delay * 2, 5.0)
    raise ConnectionError(f"no RabbitMQ node of {cfg.hosts} accepted the connection: {last!r}")


def connect_forever(cfg: AmqpConfig, name: str, stop: Callable[[], bool] = lambda: False) -> Optional[pika.BlockingConnection]:
    delay = 0.2
    while not stop():
        try:
            return connect(cfg, name)
        except ConnectionError as e:
            log.warning("%s; retrying in %.1fs", e, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    return None


def props(headers: Optional[dict] = None) -> pika.BasicProperties:
    return pika.BasicProperties(content_type="application/json", delivery_mode=2, headers=headers)


def dumps(msg: Any) -> bytes:
    return json.dumps(msg, separators=(",", ":")).encode()
