"""The worker's validation of job messages: bad input is refused with a reason, never a crash."""
import json

import pytest

from taskforce.worker.sdk import BadJob, parse_job

GOOD = {"v": 1, "id": "abc", "type": "noop", "payload": {}, "attempt": 1, "generation": 0, "timeout_s": 5}


def test_good_job_parses():
    assert parse_job(json.dumps(GOOD).encode())["id"] == "abc"


@pytest.mark.parametrize("body", [b"not json", b"[1,2]", json.dumps({**GOOD, "attempt": "1"}).encode(),
                                  json.dumps({k: v for k, v in GOOD.items() if k != "type"}).encode(),
                                  json.dumps({**GOOD, "id": "../etc"}).encode(),
                                  json.dumps({**GOOD, "timeout_s": 0}).encode(),
                                  json.dumps({**GOOD, "attempt": True}).encode()])
def test_bad_jobs_are_refused_with_a_reason(body):
    with pytest.raises(BadJob) as e:
        parse_job(body)
    assert str(e.value)
