"""The benchmark's own software on the worker nodes: a venv at /opt/tfbench/venv with Celery
and pika from wheels built on the controller (`make bench-wheels`; the nodes are offline), and
the programs in bench/node/."""
from __future__ import annotations

from pathlib import Path

from ..lab import Lab, say
from . import NODE_DIR, here

VENV = f"{NODE_DIR}/venv"


def prepare(lab: Lab, wheels: Path) -> None:
    import celery
    want = celery.__version__
    files = sorted(wheels.glob("*.whl"))
    for node in lab.workers:
        have = lab.run(node, f"{VENV}/bin/celery --version 2>/dev/null || true").strip()
        if not have.startswith(want):
            if not files:
                raise SystemExit(f"no wheels in {wheels}: run `make bench-wheels` first")
            say(f"{node}: installing Celery {want} and pika into {VENV} from {len(files)} wheels")
            lab.run(node, f"rm -rf {NODE_DIR}/wheels && install -d -m 0755 {NODE_DIR}/wheels")
            for f in files:
                lab.put(node, f, f"{NODE_DIR}/wheels/{f.name}")
            lab.run(node, f"test -x {VENV}/bin/python || python3 -m venv {VENV}")
            lab.run(node, f"{VENV}/bin/pip install -q --no-index --find-links {NODE_DIR}/wheels celery pika", timeout=600)
        for name in ("raw_consumer.py", "celery_tasks.py"):
            lab.put(node, here() / "node" / name, f"{NODE_DIR}/{name}")
        lab.run(node, f"chmod 0644 {NODE_DIR}/*.py")
