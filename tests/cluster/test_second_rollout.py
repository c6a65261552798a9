"""Idempotence is a test: rolling the same inventory out again changes nothing on any host,
and the cluster is still healthy afterwards. Runs last in this tier (it takes minutes)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.cluster.cluster_lab import INVENTORY_DIR, REPO, address, hosts_in

RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def test_a_second_rollout_reports_changed_0_and_the_cluster_stays_healthy(secrets):
    playbook = Path(sys.executable).with_name("ansible-playbook")
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "playbooks" / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    t0 = time.time()
    r = subprocess.run([str(playbook), "-i", str(INVENTORY_DIR), "playbooks/site.yml"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=1800)
    took = time.time() - t0
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    recap = {m[0]: (int(m[2]), int(m[3]), int(m[4])) for m in RECAP.findall(r.stdout)}
    print(f"\nsecond site.yml run: {took:.0f}s; recap {recap}")
    cluster_hosts = set(hosts_in("rabbitmq") + hosts_in("orchestrators") + hosts_in("gateways")
                        + hosts_in("workers_python") + hosts_in("workers_java"))
    assert cluster_hosts <= set(recap), f"hosts missing from the recap: {cluster_hosts - set(recap)}"
    changed = {h: c for h, (c, _, _) in recap.items() if c}
    assert not changed, f"a second run changed something: {changed}"
    assert all(u == 0 and f == 0 for _, u, f in recap.values())

    token = secrets["api_tokens"]["admin"]
    for gw in hosts_in("gateways"):
        assert httpx.get(f"http://{address(gw)}:8080/readyz", timeout=10).status_code == 200
    view = httpx.get(f"http://{address(hosts_in('gateways')[0])}:8080/v1/cluster",
                     headers={"Authorization": f"Bearer {token}"}, timeout=20).json()
    leaders = [m for m in view["raft"]["members"] if m.get("state") == "leader"]
    assert len(leaders) == 1 and all(n["reachable"] for n in view["rabbitmq"]["nodes"])
