"""The job: what a client submits, and the record the cluster keeps of it."""
from __future__ import annotations

import enum
import re
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

JOB_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NAME_RE = r"^[A-Za-z0-9_.-]{1,64}$"


class Phase(str, enum.Enum):
    """A job's status. The order of the members is not the lattice order: see crdt.py."""

    PENDING = "pending"      # accepted and committed, not yet in a lane queue (or waiting for run_at / backoff)
    QUEUED = "queued"        # published to its lane queue
    RUNNING = "running"      # a worker has started it
    FAILED = "failed"        # an attempt failed; a retry is scheduled
    SUCCEEDED = "succeeded"  # terminal
    DEAD = "dead"            # terminal: failed max_attempts times
    CANCELLED = "cancelled"  # terminal

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Phase.SUCCEEDED, Phase.DEAD, Phase.CANCELLED})

LANES = ("high", "normal", "low")


def lane_for(priority: int) -> str:
    """Map priority 0-9 onto the three lanes (quorum queues have no x-max-priority before 4.x)."""
    if priority >= 7:
        return "high"
    if priority >= 4:
        return "normal"
    return "low"


def lane_queue(queue: str, lane: str) -> str:
    return f"tf.jobs.{queue}.{lane}"


class JobSpec(BaseModel):
    """The body of POST /v1/jobs."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(pattern=NAME_RE, description="job type; a worker must have a handler for it")
    payload: Any = Field(default_factory=dict, description="any JSON value handed to the handler")
    queue: str = Field(default="default", pattern=NAME_RE)
    priority: int = Field(default=5, ge=0, le=9, description="0-9; 7-9 high lane, 4-6 normal, 0-3 low")
    max_attempts: int = Field(default=3, ge=1, le=100)
    timeout_s: float = Field(default=60.0, gt=0, le=86400)
    run_at: Optional[float] = Field(default=None, ge=0, description="Unix seconds; the job does not start before")
    tags: list[str] = Field(default_factory=list, max_length=32)

    @field_validator("tags")
    @classmethod
    def _tags_short(cls, v: list[str]) -> list[str]:
        for t in v:
            if not (1 <= len(t) <= 64):
                raise ValueError("each tag must be 1-64 characters")
        return v


class BatchSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    jobs: list[JobSpec] = Field(min_length=1, max_length=1000)


class Accepted(BaseModel):
    id: str
    status: str = "accepted"


class BatchItem(BaseModel):
    index: int
    id: Optional[str] = None
    status: int
    error: Optional[str] = None


class BatchResult(BaseModel):
    results: list[BatchItem]


class Attempt(BaseModel):
    attempt: int
    generation: int = 0
    worker_id: Optional[str] = None
    node: Optional[str] = None
    lang: Optional[str] = None
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    outcome: Optional[str] = None
    error: Optional[dict[str, Any]] = None


class JobRecord(BaseModel):
    """What GET /v1/jobs/{id} answers."""

    id: str
    type: str
    queue: str
    priority: int
    lane: str
    max_attempts: int
    timeout_s: float
    run_at: Optional[float] = None
    tags: list[str] = []
    status: Phase
    attempt: int = 0
    generation: int = 0
    attempts: list[Attempt] = []
    result: Any = None
    error: Optional[dict[str, Any]] = None
    progress: Optional[float] = None
    submitted_at: float
    updated_at: float
    finished_at: Optional[float] = None
    next_run_at: Optional[float] = None
    payload: Any = None


class JobPage(BaseModel):
    jobs: list[JobRecord]
    next_cursor: Optional[str] = None
