"""The gateway role: a hardened unit that answers, with hashed tokens only."""

import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("gateways")


def test_unit_is_running_as_taskforce(host):
    assert host.service("taskforce-gateway").is_running
    assert "User=taskforce" in host.check_output("systemctl show taskforce-gateway -p User")


def test_gateway_is_ready(host):
    assert '"ready":true' in host.check_output("curl -sf http://127.0.0.1:8080/readyz").replace(" ", "")


def test_tokens_file_holds_hashes_with_scopes(host):
    tokens = host.file("/etc/taskforce/tokens.toml")
    assert tokens.mode == 0o640
    text = tokens.content_string
    assert text.count("[[token]]") == 2 and 'scopes = ["submit", "read", "admin"]' in text
    assert "sha256 = " in text


def test_requests_without_a_token_are_refused(host):
    assert host.check_output("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/v1/jobs") == "401"
