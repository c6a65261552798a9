"""What the Python side puts on the wire validates against app/schemas, the contract the
Java worker is tested against too."""
import json
from pathlib import Path

import jsonschema
import pytest

from taskforce.gateway.routes.jobs import command_for
from taskforce.model import JobSpec
from taskforce.orchestrator.schedule import CONTROL, DEAD, DISPATCH, EVENT, Schedule

SCHEMAS = Path(__file__).resolve().parents[2] / "app" / "schemas"


def validator(name: str):
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def outbox():
    s = Schedule()
    s.begin_epoch(1, "o1")
    sub = command_for(JobSpec(type="echo", payload={"a": 1}, priority=8), "a" * 32, 100.0)
    s.apply(1, 100.0, [sub, command_for(JobSpec(type="noop", max_attempts=1), "b" * 32, 100.0)], [])
    ev = {"v": 1, "job_id": "b" * 32, "attempt": 1, "generation": 0, "worker_id": "w", "node": "n",
          "lang": "python", "ts": 101.0}
    s.apply(1, 101.0, [{"v": 1, "kind": "cancel", "job_id": "a" * 32}],
            [dict(ev, kind="started"), dict(ev, kind="failed", error={"type": "E", "message": "m"})])
    return list(s.outbox), sub


def test_submit_command_validates(outbox):
    validator("command").validate(outbox[1])


def test_dispatched_job_messages_validate(outbox):
    v = validator("job")
    msgs = [{k: x for k, x in d.items() if k != "lane_queue"} for _, k, d in outbox[0] if k == DISPATCH]
    assert msgs
    for m in msgs:
        v.validate(m)
    for _, k, d in outbox[0]:
        if k == DEAD:
            v.validate({x: y for x, y in d["job"].items() if x != "lane_queue"})


def test_committed_events_validate(outbox):
    v = validator("job-event")
    evs = [d for _, k, d in outbox[0] if k == EVENT]
    assert {e["phase"] for e in evs} >= {"pending", "queued", "cancelled", "dead"}
    for e in evs:
        v.validate(e)


def test_control_messages_validate(outbox):
    ctl = [d for _, k, d in outbox[0] if k == CONTROL]
    assert ctl
    for c in ctl:
        validator("control").validate(c)
