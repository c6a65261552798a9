"""One real cluster (RabbitMQ, 3 orchestrators, 2 gateways, 2 workers) for the whole tier."""
import json
import os
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from dev.cluster import DevCluster


def have_rabbitmq() -> bool:
    return Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists() and os.geteuid() == 0


def start_cluster(tmp_path_factory, name: str, **kw) -> DevCluster:
    """A DevCluster under TASKFORCE_IT_DIR (or a fresh temporary folder) in folder name, up."""
    if not have_rabbitmq():
        pytest.skip("needs root and the rabbitmq-server package (make deps installs it)")
    base = Path(os.environ.get("TASKFORCE_IT_DIR") or tmp_path_factory.mktemp("tf"))
    c = DevCluster(base / name, **kw)
    try:
        c.up()
    except BaseException:
        c.down()
        raise
    return c


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    jar = Path(__file__).resolve().parents[2] / "build" / "taskforce-worker.jar"
    java = 1 if jar.exists() and shutil.which("java") else 0
    c = start_cluster(tmp_path_factory, "cluster", java_workers=java)
    yield c
    c.down()


def executions(c: DevCluster, jid: str) -> list[dict]:
    """Every run of a job, from the demo handlers' execution log lines."""
    out = []
    for log in (c.base / "logs").glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if f'"exec": "{jid}"' in line or f'"exec":"{jid}"' in line:
                try:
                    out.append(json.loads(line[line.index("{"):]))
                except ValueError:
                    pass
    return out


class SSE:
    """A background SSE reader collecting (id, event, data) frames."""

    def __init__(self, url: str, token: str, headers: dict | None = None) -> None:
        self.frames: list[tuple[str, str, dict]] = []
        self.ready = threading.Event()
        self._stop = False
        self._h = {"Authorization": f"Bearer {token}", **(headers or {})}
        self.url = url
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        assert self.ready.wait(10), "SSE stream did not open"

    def _run(self) -> None:
        try:
            self._read()
        except httpx.HTTPError:
            if not self._stop:   # the stream ending when the cluster stops is expected
                self.error = True
            self.ready.set()

    def _read(self) -> None:
        with httpx.Client(timeout=None) as c, c.stream("GET", self.url, headers=self._h) as r:
            self.status = r.status_code
            self.ready.set()
            fid = ev = None
            for line in r.iter_lines():
                if self._stop:
                    return
                if line.startswith("id: "):
                    fid = line[4:]
                elif line.startswith("event: "):
                    ev = line[7:]
                elif line.startswith("data: "):
                    self.frames.append((fid, ev, json.loads(line[6:])))

    def stop(self) -> None:
        self._stop = True


def submit(c: DevCluster, body: dict, gw: int = 0, token: str = "admin", headers: dict | None = None) -> str:
    with c.client(gw, token) as cl:
        r = cl.post("/v1/jobs", json=body, headers=headers or {})
        assert r.status_code == 202, r.text
        return r.json()["id"]


def get(c: DevCluster, jid: str, gw: int = 0) -> dict:
    with c.client(gw) as cl:
        r = cl.get(f"/v1/jobs/{jid}")
        assert r.status_code == 200, r.text
        return r.json()


def wait_for(pred, timeout: float = 30, every: float = 0.2, what: str = "condition"):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")
