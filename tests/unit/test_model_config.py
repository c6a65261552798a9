"""The job schema, lanes and configuration."""
import pytest
from pydantic import ValidationError

from taskforce.config import ConfigError, apply_env, parse
from taskforce.model import JobSpec, lane_for


def test_priority_lanes():
    assert [lane_for(p) for p in range(10)] == ["low"] * 4 + ["normal"] * 3 + ["high"] * 3


@pytest.mark.parametrize("body,field", [
    ({"type": "x", "priority": 10}, "priority"),
    ({"type": "x", "max_attempts": 0}, "max_attempts"),
    ({"type": "bad type!"}, "type"),
    ({"payload": {}}, "type"),
    ({"type": "x", "timeout_s": -1}, "timeout_s"),
    ({"type": "x", "surprise": 1}, "surprise"),
])
def test_invalid_bodies_name_the_field(body, field):
    with pytest.raises(ValidationError) as e:
        JobSpec.model_validate(body)
    assert field in str(e.value)


def test_defaults():
    s = JobSpec(type="noop")
    assert (s.queue, s.priority, s.max_attempts) == ("default", 5, 3)


BASE = {"amqp": {"user": "worker", "password": "pw"}, "worker": {}}


def test_env_overrides_and_lists():
    cfg = parse(apply_env(BASE, {"TASKFORCE_WORKER__SLOTS": "7", "TASKFORCE_AMQP__HOSTS": "a:1, b:2",
                                 "TASKFORCE_NODE": "n9"}))
    assert cfg.worker.slots == 7 and cfg.amqp.hosts == ["a:1", "b:2"] and cfg.node == "n9"


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError) as e:
        parse({"amqp": {"user": "w", "password": "pw"}, "worker": {"slots": 0}})
    assert "worker.slots" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse({"amqp": {"user": "w"}})
    assert "amqp.password" in str(e.value)


def test_missing_section_is_explained():
    with pytest.raises(ConfigError, match=r"\[raft\]"):
        parse(BASE).need("raft")
