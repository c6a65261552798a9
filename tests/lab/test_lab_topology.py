"""Node names, addresses and groups: what the inventory and /etc/hosts are built from."""

import pytest

from lab.topology import DEFAULT_NODES, Node, TopologyError, hosts_file, kind_of, parse_nodes

PREFIX = "10.77.0"


def test_default_nodes_get_the_documented_addresses():
    nodes = parse_nodes(",".join(DEFAULT_NODES), PREFIX)
    assert [(n.name, n.address) for n in nodes] == [
        ("core1", "10.77.0.11"), ("core2", "10.77.0.12"), ("core3", "10.77.0.13"),
        ("worker1", "10.77.0.21"), ("worker2", "10.77.0.22")]


def test_core_and_worker_nodes_join_their_groups():
    core, worker, other = parse_nodes("core1,worker3,molecule", PREFIX)
    assert core.groups == ("rabbitmq", "orchestrators", "gateways")
    assert worker.groups == ("workers_python", "workers_java")
    assert other.groups == ()
    assert kind_of("core12") == "core" and kind_of("corex") == "other"


def test_other_names_take_the_first_free_address_from_100():
    existing = [Node("scratch", "10.77.0.100")]
    nodes = parse_nodes("a,b", PREFIX, existing)
    assert [n.address for n in nodes] == ["10.77.0.101", "10.77.0.102"]


def test_existing_nodes_keep_their_address():
    existing = [Node("extra", "10.77.0.150")]
    assert parse_nodes("extra", PREFIX, existing)[0].address == "10.77.0.150"


def test_explicit_address_is_used_and_checked():
    assert parse_nodes("x:10.77.0.40", PREFIX)[0].address == "10.77.0.40"
    with pytest.raises(TopologyError, match="must be in 10.77.0"):
        parse_nodes("x:10.78.0.40", PREFIX)
    with pytest.raises(TopologyError, match="bridge"):
        parse_nodes("x:10.77.0.1", PREFIX)
    with pytest.raises(TopologyError, match="not an IPv4"):
        parse_nodes("x:banana", PREFIX)


@pytest.mark.parametrize("spec, message", [
    ("core1,core1", "listed twice"),
    ("Core1", "short hostname"),
    ("core_1", "short hostname"),
    ("", "no nodes"),
    ("core10", "at most core9"),
    ("a:10.77.0.50,b:10.77.0.50", "already used"),
])
def test_bad_specs_are_refused_with_a_reason(spec, message):
    with pytest.raises(TopologyError, match=message):
        parse_nodes(spec, PREFIX)


def test_hosts_file_names_every_node():
    text = hosts_file(parse_nodes("core1,worker1", PREFIX), "10.77.0.1")
    assert "10.77.0.11\tcore1\n" in text
    assert "10.77.0.21\tworker1\n" in text
    assert text.startswith("#") and "127.0.0.1\tlocalhost" in text
