"""TaskForce end to end: no-op jobs POSTed to the gateways (round robin), scheduled by the
Raft leader, run by the Python workers on the worker nodes, counted when the terminal event
reaches a gateway's SSE stream. Start is the attempt's start as the worker stamped it; done
is the time the leader committed the terminal state (what a client can observe)."""
from __future__ import annotations

import json
import threading
import time
from typing import Optional

import httpx

from ..lab import Lab, say
from . import NODE_DIR, System, run_unit, wait_for

WORKER_UNIT = "taskforce-worker@{}.service"
VARIANT_VENV = f"{NODE_DIR}/tf-variant"
DEPLOYED_SITE = "/opt/taskforce/venv/lib/python3*/site-packages"


class TaskForce(System):
    name = "taskforce"
    clients = 3
    batch = 50

    def __init__(self, lab: Lab, variant: Optional[str] = None) -> None:
        """variant: a label for a worker built from another tree (see install_variant); its
        workers run as transient units from VARIANT_VENV with the deployed worker's config."""
        super().__init__(lab)
        self.variant = variant
        if variant:
            self.name = f"taskforce-{variant}"
        self.urls = lab.gateway_urls()
        self.headers = {"Authorization": f"Bearer {lab.token}"}
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._done: dict[str, tuple[float, float]] = {}
        self._stop = threading.Event()
        self._sse: Optional[threading.Thread] = None
        self._connected = threading.Event()
        self.units: dict[str, list[str]] = {}

    def _http(self, client: int) -> httpx.Client:
        c = getattr(self._local, "c", None)
        if c is None:
            c = httpx.Client(base_url=self.urls[client % len(self.urls)], headers=self.headers, timeout=60)
            self._local.c = c
            self._clients.append(c)
        return c

    # ---- workers ------------------------------------------------------------------------------
    def start_consumers(self, plan: dict[str, int]) -> None:
        """plan = {worker node: number of worker processes}, as taskforce-worker@1..N."""
        for node, count in plan.items():
            if self.variant:
                units = [f"tfbench-tf-{i + 1}.service" for i in range(count)]
                for u in units:
                    run_unit(self.lab, node, u.removesuffix(".service"), "-/dev/null",
                             f"{VARIANT_VENV}/bin/taskforce --log-level info worker --config /etc/taskforce/worker.toml")
            else:
                units = [WORKER_UNIT.format(i + 1) for i in range(count)]
                self.lab.systemctl(node, "start", units)
            self.units[node] = units
        want = sum(plan.values())
        if not wait_for(lambda: self._live_workers() >= want, 30, 1.0):
            say(f"taskforce: only {self._live_workers()} of {want} Python workers seen live after 30 s")

    def _live_workers(self) -> int:
        try:
            r = self._http(0).get("/v1/workers")
            ws = r.json().get("workers", [])
            return sum(1 for w in ws if w.get("lang") == "python" and w.get("alive"))
        except Exception:
            return 0

    def stop_consumers(self) -> None:
        for node, units in self.units.items():
            self.lab.systemctl(node, "stop", units)
        self.units = {}

    # ---- completions --------------------------------------------------------------------------
    def begin(self, tag: str) -> None:
        self.end()
        self._done = {}
        self._stop.clear()
        self._connected.clear()
        self._sse = threading.Thread(target=self._follow, name="sse", daemon=True)
        self._sse.start()
        if not self._connected.wait(10):
            raise RuntimeError(f"no SSE stream from {self.urls[0]}")

    def _follow(self) -> None:
        """Terminal events from one gateway's /v1/events (every gateway sees every event)."""
        while not self._stop.is_set():
            try:
                with httpx.Client(base_url=self.urls[0], headers=self.headers, timeout=httpx.Timeout(5, read=30)) as c:
                    with c.stream("GET", "/v1/events", params={"status": "succeeded"}) as r:
                        r.raise_for_status()
                        self._connected.set()
                        for line in r.iter_lines():
                            if self._stop.is_set():
                                return
                            if line.startswith("data: "):
                                self._on_event(json.loads(line[6:]))
            except Exception as e:
                if not self._stop.is_set():
                    say(f"taskforce: SSE stream broke ({e!r}); reconnecting")
                    time.sleep(0.5)

    def _on_event(self, ev: dict) -> None:
        rec = ev.get("record") or {}
        attempts = rec.get("attempts") or []
        start = attempts[-1].get("started_at") if attempts else None
        done = rec.get("finished_at") or ev.get("ts")
        if start is not None and done is not None:
            self._done[ev["job_id"]] = (float(start), float(done))

    def end(self) -> None:
        self._stop.set()
        if self._sse:
            self._sse.join(35)
            self._sse = None

    def completed(self) -> int:
        return len(self._done)

    def stamps(self) -> dict[str, tuple[float, float]]:
        return dict(self._done)

    # ---- submitting ---------------------------------------------------------------------------
    def submit_batch(self, client: int, n: int) -> list[tuple[str, float]]:
        t = time.time()
        r = self._http(client).post("/v1/jobs/batch", json={"jobs": [{"type": "noop"}] * n})
        r.raise_for_status()
        return [(x["id"], t) for x in r.json()["results"] if x["status"] == 202]

    def submit_one(self, client: int) -> tuple[str, float]:
        t = time.time()
        r = self._http(client).post("/v1/jobs", json={"type": "noop"})
        r.raise_for_status()
        return r.json()["id"], t

    def cpu_plan(self) -> dict[str, list[tuple[str, str]]]:
        plan: dict[str, list[tuple[str, str]]] = {}
        for c in self.lab.cores:
            plan[c] = [("rabbitmq", "rabbitmq-server.service")]
        for c in self.lab.inv.groups.get("orchestrators", []):
            plan.setdefault(c, []).append(("orchestrator", "taskforce-orchestrator.service"))
        for c in self.lab.gateways:
            plan.setdefault(c, []).append(("gateway", "taskforce-gateway.service"))
        for node, units in self.units.items():
            plan.setdefault(node, []).extend(("worker", u) for u in units)
        return plan

    def teardown(self) -> None:
        self.end()
        for c in self._clients:
            c.close()
        self._clients.clear()


def install_variant(lab: Lab, wheel) -> None:
    """A second TaskForce on the worker nodes, for before/after in one run: a venv whose own
    site-packages hold only the variant's taskforce wheel and which falls back to the deployed
    venv's packages (a .pth line) for every dependency."""
    for node in lab.workers:
        lab.run(node, f"rm -rf {VARIANT_VENV} && python3 -m venv {VARIANT_VENV} && "
                      f"echo $(ls -d {DEPLOYED_SITE}) > $(ls -d {VARIANT_VENV}/lib/python3*/site-packages)/zz-deployed.pth")
        lab.put(node, wheel, f"{NODE_DIR}/{wheel.name}")
        # --ignore-installed: the deployed taskforce, seen through the .pth line, often has the
        # same version, and pip would otherwise count it as installed and install nothing.
        lab.run(node, f"{VARIANT_VENV}/bin/pip install -q --no-index --no-deps --ignore-installed {NODE_DIR}/{wheel.name}"
                      f" && test -x {VARIANT_VENV}/bin/taskforce")
        say(f"{node}: variant worker from {wheel.name} in {VARIANT_VENV}")
