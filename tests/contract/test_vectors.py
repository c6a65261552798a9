"""The wire contract: every schema in app/schemas is a valid draft 2020-12 schema, and
every vector under app/schemas/vectors/<schema>/{valid,invalid}/ is judged as its folder says.

The Java worker's tests (app/java-worker, SchemaVectorsTest) walk the same files, so a
message shape that one language accepts and the other rejects shows up as a failing vector.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "app" / "schemas"
VECTORS = SCHEMAS / "vectors"

EXPECTED_SCHEMAS = {"job", "worker-event", "heartbeat", "control", "command", "job-event"}
MIN_VECTORS = 3  # per schema and per verdict


def _schema_names() -> list[str]:
    return sorted(p.name[: -len(".schema.json")] for p in SCHEMAS.glob("*.schema.json"))


def _load_schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text())


def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(_load_schema(name))


def _vectors() -> list[tuple[str, str, Path]]:
    out = []
    for schema_dir in sorted(p for p in VECTORS.iterdir() if p.is_dir() and p.name != "contract"):
        for verdict in ("valid", "invalid"):
            for f in sorted((schema_dir / verdict).glob("*.json")):
                out.append((schema_dir.name, verdict, f))
    return out


VECTOR_CASES = _vectors()


def test_every_expected_schema_exists() -> None:
    assert set(_schema_names()) == EXPECTED_SCHEMAS


@pytest.mark.parametrize("name", _schema_names())
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    schema = _load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("name", _schema_names())
def test_schema_has_enough_vectors_each_way(name: str) -> None:
    for verdict in ("valid", "invalid"):
        files = list((VECTORS / name / verdict).glob("*.json"))
        assert len(files) >= MIN_VECTORS, f"{name}/{verdict} has {len(files)} vectors, want >= {MIN_VECTORS}"


def test_no_vector_folder_without_a_schema() -> None:
    folders = {p.name for p in VECTORS.iterdir() if p.is_dir()} - {"contract"}
    assert folders <= set(_schema_names()), f"vector folders with no schema: {folders - set(_schema_names())}"
    for folder in folders:
        stray = {p.name for p in (VECTORS / folder).iterdir()} - {"valid", "invalid"}
        assert not stray, f"{folder}/ holds {stray}; vectors go under valid/ or invalid/"


@pytest.mark.parametrize(
    "schema,verdict,path",
    VECTOR_CASES,
    ids=[f"{s}/{v}/{p.stem}" for s, v, p in VECTOR_CASES],
)
def test_vector(schema: str, verdict: str, path: Path) -> None:
    instance = json.loads(path.read_text())
    errors = sorted(_validator(schema).iter_errors(instance), key=lambda e: list(e.path))
    if verdict == "valid":
        assert not errors, f"{path.name} should be valid: " + "; ".join(e.message for e in errors)
    else:
        assert errors, f"{path.name} is filed as invalid but {schema}.schema.json accepts it"


# ---- demo-handler contract vectors ------------------------------------------------------

CONTRACT = sorted((VECTORS / "contract").glob("*.json"))
DEMO_TYPES = {"noop", "echo", "sleep", "fail", "cpu", "hang"}


def _job_message(vector: dict) -> dict:
    """The job message a worker would receive for this contract vector."""
    return {"v": 1, "id": "contract-" + vector["type"], "type": vector["type"], "payload": vector["payload"],
            "queue": "default", "priority": 5, "attempt": vector["attempt"], "generation": vector.get("generation", 0),
            "max_attempts": 10,
            "timeout_s": vector.get("timeout_s", 30.0), "epoch": 1, "submitted_at": 1700000000.0}


def _terminal_events(vector: dict) -> list[dict]:
    """The terminal worker events, one per language, that this vector's expectation describes."""
    base = {"v": 1, "job_id": "contract-" + vector["type"], "attempt": vector["attempt"],
            "generation": vector.get("generation", 0),
            "node": "n1", "ts": 1700000001.0}
    expect = vector["expect"]
    events = []
    for lang in ("python", "java"):
        ev = dict(base, lang=lang, worker_id=f"n1-{lang}-1")
        if expect["outcome"] == "succeeded":
            ev.update(kind="succeeded", result=expect["result"])
        else:
            t = expect["error_type"]
            ev.update(kind="failed", error={"type": t[lang] if isinstance(t, dict) else t,
                                            "message": expect.get("error_message", "")})
        events.append(ev)
    return events


def test_contract_vectors_cover_every_demo_type() -> None:
    assert {json.loads(p.read_text())["type"] for p in CONTRACT} == DEMO_TYPES


@pytest.mark.parametrize("path", CONTRACT, ids=[p.stem for p in CONTRACT])
def test_contract_vector_is_well_formed(path: Path) -> None:
    vector = json.loads(path.read_text())
    assert set(vector) <= {"description", "type", "payload", "attempt", "generation", "timeout_s", "expect"}
    assert vector["type"] in DEMO_TYPES
    assert vector["expect"]["outcome"] in ("succeeded", "failed")
    job_errors = list(_validator("job").iter_errors(_job_message(vector)))
    assert not job_errors, [e.message for e in job_errors]
    for event in _terminal_events(vector):
        ev_errors = list(_validator("worker-event").iter_errors(event))
        assert not ev_errors, [e.message for e in ev_errors]


def test_cpu_vectors_hold_the_exact_sum() -> None:
    for path in CONTRACT:
        vector = json.loads(path.read_text())
        if vector["type"] == "cpu" and isinstance(vector["payload"], dict) and isinstance(vector["payload"].get("n"), int):
            n = vector["payload"]["n"]
            assert vector["expect"]["result"] == {"sum": (n - 1) * n * (2 * n - 1) // 6}


# ---- the Python demo handlers against the same vectors (the Java ones: DemoContractTest) ----

class _Ctx:
    """The handler-facing part of taskforce.worker.slots.Context, without a slot process."""

    def __init__(self, vector: dict) -> None:
        self.job_id = "contract-" + vector["type"]
        self.attempt = vector["attempt"]
        self.generation = vector.get("generation", 0)
        self.node = "n1"
        self.worker_id = "n1-py-1"
        self.cancelled = False
        self.progressed: list[float] = []

    def progress(self, fraction: float) -> None:
        self.progressed.append(fraction)


def _python_demo():
    try:
        from taskforce.worker import demo
    except ImportError as e:  # the package is not importable: say so instead of passing
        pytest.fail(f"cannot import taskforce.worker.demo ({e}); install the app (pip install -e .)")
    return demo


@pytest.mark.parametrize("path", CONTRACT, ids=[p.stem for p in CONTRACT])
def test_python_demo_handlers_meet_the_contract(path: Path, capsys) -> None:
    vector = json.loads(path.read_text())
    if vector["type"] == "hang":
        pytest.skip("hang never returns; the Python slot's hard timeout is covered by the worker tests")
    handler = _python_demo().HANDLERS[vector["type"]]
    ctx = _Ctx(vector)
    expect = vector["expect"]
    try:
        result = handler(json.loads(json.dumps(vector["payload"])), ctx)
    except Exception as e:  # the worker reports type(e).__name__
        assert expect["outcome"] == "failed", f"raised {type(e).__name__}: {e}"
        want = expect["error_type"]
        assert type(e).__name__ == (want["python"] if isinstance(want, dict) else want)
        if "error_message" in expect:
            assert str(e) == expect["error_message"]
    else:
        assert expect["outcome"] == "succeeded", f"returned {result!r}, expected a failure"
        # Equal on the wire, not just equal in Python (where 0 == 0.0).
        assert json.dumps(result, sort_keys=True) == json.dumps(expect["result"], sort_keys=True)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert lines == [{"exec": ctx.job_id, "attempt": ctx.attempt, "node": "n1", "worker_id": "n1-py-1"}]
