"""Which nodes the lab has, what addresses they get and which groups they join.

Pure logic: no processes, no files. A node's kind comes from its name:
`coreN` machines run RabbitMQ, an orchestrator and a gateway; `workerN`
machines run Python and Java workers. Any other name is a plain node (for
molecule scenarios) and needs no group.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

DEFAULT_NODES = ("core1", "core2", "core3", "worker1", "worker2")

GROUPS_BY_KIND: dict[str, tuple[str, ...]] = {
    "core": ("rabbitmq", "orchestrators", "gateways"),
    "worker": ("workers_python", "workers_java"),
    "other": (),
}
ALL_GROUPS = tuple(dict.fromkeys(g for groups in GROUPS_BY_KIND.values() for g in groups))

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_KIND = re.compile(r"^(core|worker)([1-9][0-9]?)$")

# Where each kind's addresses start: core1 is .11, worker1 is .21, others .100+.
_BASE = {"core": 10, "worker": 20}
_MAX_INDEX = {"core": 9, "worker": 79}
_OTHER_RANGE = range(100, 255)


class TopologyError(ValueError):
    pass


@dataclass(frozen=True)
class Node:
    name: str
    address: str

    @property
    def kind(self) -> str:
        return kind_of(self.name)

    @property
    def groups(self) -> tuple[str, ...]:
        return GROUPS_BY_KIND[self.kind]


def kind_of(name: str) -> str:
    match = _KIND.match(name)
    return match.group(1) if match else "other"


def default_address(name: str, prefix: str, taken: set[str]) -> str:
    """The address a node gets when none is given: fixed by name for core and
    worker nodes, else the first free one from .100 up."""
    match = _KIND.match(name)
    if match:
        kind, index = match.group(1), int(match.group(2))
        if index > _MAX_INDEX[kind]:
            raise TopologyError(f"{name}: at most {kind}{_MAX_INDEX[kind]}; give an address as {name}:{prefix}.N")
        return f"{prefix}.{_BASE[kind] + index}"
    for last in _OTHER_RANGE:
        candidate = f"{prefix}.{last}"
        if candidate not in taken:
            return candidate
    raise TopologyError(f"{name}: no free address left in {prefix}.100-254")


def parse_nodes(spec: str, prefix: str, existing: list[Node] | tuple[Node, ...] = ()) -> list[Node]:
    """Parse `core1,core2,worker1,extra:10.77.0.50` into nodes.

    `existing` nodes keep their addresses and block them for new nodes.
    """
    known = {node.name: node for node in existing}
    taken = {node.address for node in existing}
    nodes: list[Node] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        name, _, address = item.partition(":")
        validate_name(name)
        if any(node.name == name for node in nodes):
            raise TopologyError(f"{name}: listed twice")
        if address:
            validate_address(address, prefix)
        elif name in known:
            address = known[name].address
        else:
            address = default_address(name, prefix, taken)
        if address in {node.address for node in nodes}:
            raise TopologyError(f"{name}: address {address} is already used by another node")
        taken.add(address)
        nodes.append(Node(name, address))
    if not nodes:
        raise TopologyError("no nodes given")
    return nodes


def validate_name(name: str) -> None:
    if not _NAME.match(name):
        raise TopologyError(
            f"{name!r}: a node name must be a short hostname: lowercase letters, digits and '-', starting with a letter")


def validate_address(address: str, prefix: str) -> None:
    try:
        parsed = ipaddress.IPv4Address(address)
    except ValueError as exc:
        raise TopologyError(f"{address!r} is not an IPv4 address") from exc
    network = ipaddress.IPv4Network(f"{prefix}.0/24")
    if parsed not in network or address.endswith((".0", ".1", ".255")):
        raise TopologyError(f"{address}: node addresses must be in {prefix}.2-254 (the bridge is {prefix}.1)")


def hosts_file(nodes: list[Node] | tuple[Node, ...], bridge_address: str) -> str:
    """The /etc/hosts every node shares, so `rabbit@core1` resolves everywhere."""
    lines = [
        "# Written by the TaskForce lab; shared by every node.",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        f"{bridge_address}\tlab-host",
    ]
    lines += [f"{node.address}\t{node.name}" for node in nodes]
    return "\n".join(lines) + "\n"
