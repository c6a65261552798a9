"""Service configuration: one TOML file, validated, with TASKFORCE_<SECTION>__<KEY> overrides."""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_PATH = "/etc/taskforce/taskforce.toml"


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and why."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AmqpConfig(_Section):
    hosts: list[str] = Field(default_factory=lambda: ["127.0.0.1:5672"], min_length=1)
    vhost: str = "taskforce"
    user: str
    password: str = Field(min_length=1)
    heartbeat_s: int = Field(default=10, ge=1, le=600)


class RaftConfig(_Section):
    self: str
    peers: list[str] = Field(default_factory=list)
    password: str = Field(min_length=8)
    data_dir: str = "/var/lib/taskforce/raft"
    http_listen: str = "127.0.0.1:7100"
    internal_token: str = Field(min_length=8)
    leader_fallback_s: float = Field(default=4.0, gt=0, description="pysyncobj leaderFallbackTimeout")
    commit_timeout_s: float = Field(default=5.0, gt=0)
    retention_s: float = Field(default=86400.0, gt=0, description="finished jobs are compacted after this")
    max_retained: int = Field(default=100_000, ge=100)
    backoff_base_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=300.0, gt=0)
    heartbeat_grace_s: float = Field(default=10.0, gt=0)


class GatewayConfig(_Section):
    listen: str = "0.0.0.0:8080"
    orchestrators: list[str] = Field(default_factory=list)
    internal_token: str = Field(min_length=8)
    tokens_file: str = "/etc/taskforce/tokens.toml"
    max_payload_bytes: int = Field(default=1 << 20, ge=1024)
    publish_timeout_s: float = Field(default=5.0, gt=0)


class WorkerConfig(_Section):
    queues: list[str] = Field(default_factory=lambda: ["default"], min_length=1)
    slots: int = Field(default=4, ge=1, le=256)
    prefetch: int = Field(default=2, ge=1, le=1000)
    handlers: list[str] = Field(default_factory=lambda: ["taskforce.worker.demo"])
    grace_s: float = Field(default=30.0, ge=0)
    heartbeat_s: float = Field(default=2.0, gt=0)


class Config(_Section):
    node: str = Field(default_factory=lambda: socket.gethostname().split(".")[0])
    amqp: AmqpConfig
    raft: Optional[RaftConfig] = None
    gateway: Optional[GatewayConfig] = None
    worker: Optional[WorkerConfig] = None

    def need(self, section: str) -> Any:
        value = getattr(self, section)
        if value is None:
            raise ConfigError(f"the config has no [{section}] section, which this service needs")
        return value


_SECTIONS = {"amqp", "raft", "gateway", "worker"}
_LIST_KEYS = {"hosts", "peers", "orchestrators", "queues", "handlers"}


def apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Overlay TASKFORCE_<SECTION>__<KEY>=value (or TASKFORCE_<KEY> for top-level keys)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for name, value in env.items():
        if not name.startswith("TASKFORCE_") or name == "TASKFORCE_CONFIG":
            continue
        parts = name[len("TASKFORCE_"):].lower().split("__")
        key = parts[-1]
        parsed: Any = [s.strip() for s in value.split(",") if s.strip()] if key in _LIST_KEYS else value
        # Only names that address a known key; TASKFORCE_URL, TASKFORCE_TOKEN and the like
        # belong to clients and tests, not to service config.
        if len(parts) == 1 and key == "node":
            out[key] = parsed
        elif len(parts) == 2 and parts[0] in _SECTIONS:
            out.setdefault(parts[0], {})[key] = parsed
    return out


def parse(data: dict[str, Any], source: str = "config") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        lines = [f"{source}: invalid configuration:"]
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"])
            lines.append(f"  {loc}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from None


def load(path: Optional[str] = None, env: Optional[Mapping[str, str]] = None) -> Config:
    env = os.environ if env is None else env
    path = path or env.get("TASKFORCE_CONFIG") or DEFAULT_PATH
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file {path} does not exist; pass --config FILE or set TASKFORCE_CONFIG")
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return parse(apply_env(data, env), source=path)


def split_hostport(s: str, default_port: int) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    if not host:
        return s, default_port
    return host, int(port)
