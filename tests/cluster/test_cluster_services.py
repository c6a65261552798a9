"""The TaskForce services the app roles deploy, checked on the lab nodes and
end to end: a job submitted to one gateway runs on a worker and succeeds."""

import json
import time
import urllib.error
import urllib.request

import pytest

from tests.cluster.cluster_lab import address, host, hosts_in


def members(group: str) -> list[str]:
    try:
        return hosts_in(group)
    except Exception:
        return ["absent"]


def unit_is_up(node, unit: str) -> bool:
    return node.service(unit).is_running and node.service(unit).is_enabled


@pytest.mark.parametrize("name", members("orchestrators"))
def test_orchestrator_runs_hardened_as_taskforce(name):
    node = host(name)
    if not node.file("/etc/systemd/system/taskforce-orchestrator.service").exists:
        pytest.skip("the orchestrator role has not been applied")
    assert unit_is_up(node, "taskforce-orchestrator")
    props = node.check_output("systemctl show taskforce-orchestrator -p User -p NoNewPrivileges -p ProtectSystem -p Restart")
    assert "User=taskforce" in props and "NoNewPrivileges=yes" in props
    assert "ProtectSystem=strict" in props and "Restart=on-failure" in props


@pytest.mark.parametrize("name", members("gateways"))
def test_gateway_runs(name):
    node = host(name)
    if not node.file("/etc/systemd/system/taskforce-gateway.service").exists:
        pytest.skip("the gateway role has not been applied")
    assert unit_is_up(node, "taskforce-gateway")
    assert node.file("/etc/taskforce/tokens.toml").mode == 0o640


@pytest.mark.parametrize("name", members("workers_python"))
def test_python_worker_runs(name):
    node = host(name)
    if not node.file("/etc/systemd/system/taskforce-worker@.service").exists:
        pytest.skip("the worker_python role has not been applied")
    assert unit_is_up(node, "taskforce-worker@1")


@pytest.mark.parametrize("name", members("workers_java"))
def test_java_worker_runs(name):
    node = host(name)
    if not node.file("/etc/systemd/system/taskforce-worker-java.service").exists:
        pytest.skip("the worker_java role has not been applied")
    assert unit_is_up(node, "taskforce-worker-java")


def test_the_raft_group_has_one_leader_that_all_members_agree_on(secrets):
    leaders = set()
    for name in members("orchestrators"):
        if not host(name).file("/etc/taskforce/orchestrator.toml").exists:
            pytest.skip("the orchestrator role has not been applied")
        out = host(name).check_output(
            f"curl -sf -H 'Authorization: Bearer {secrets['internal_token']}' http://{address(name)}:7100/status")
        status = json.loads(out)
        assert status["has_quorum"]
        leaders.add(status["leader"])
    assert len(leaders) == 1 and None not in leaders


def _request(method: str, url: str, token: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_a_job_submitted_to_a_gateway_succeeds(secrets):
    gateways = members("gateways")
    if not host(gateways[0]).file("/etc/taskforce/gateway.toml").exists:
        pytest.skip("the gateway role has not been applied")
    token = secrets["api_tokens"]["client"]
    accepted = _request("POST", f"http://{address(gateways[0])}:8080/v1/jobs", token,
                        {"type": "echo", "payload": {"probe": "cluster-test"}})
    job_id = accepted["id"]
    deadline = time.monotonic() + 60
    record = {}
    while time.monotonic() < deadline:
        # Read it back through another gateway: the record is cluster-wide
        # (404 until the orchestrators have committed it).
        try:
            record = _request("GET", f"http://{address(gateways[-1])}:8080/v1/jobs/{job_id}", token)
        except urllib.error.HTTPError as error:
            if error.code != 404:
                raise
            record = {"status": "not yet committed"}
        if record.get("status") in ("succeeded", "failed", "dead"):
            break
        time.sleep(0.5)
    assert record.get("status") == "succeeded", record
    assert record.get("result") == {"probe": "cluster-test"}
