"""The host side of the lab network: one bridge and one nftables table.

Nodes are bridged on `br-tf` with no gateway and no NAT: they reach each other
and the host, never the outside. Partitions are drop rules in the `inet tflab`
table on the forward hook, which sees bridged traffic because bridge netfilter
is on. A guard rule in the same chain drops anything routed off the bridge.
"""

from __future__ import annotations

from pathlib import Path

from lab import sh
from lab.settings import Settings
from lab.topology import Node

BR_NF = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
CHAIN = "lab_fwd"
PARTITION_TAG = "tflab-partition"


def bridge_exists(settings: Settings) -> bool:
    return Path(f"/sys/class/net/{settings.bridge}").exists()


def ensure_bridge(settings: Settings) -> bool:
    """Create the bridge; return False when it was already there."""
    if bridge_exists(settings):
        return False
    sh.run(["ip", "link", "add", settings.bridge, "type", "bridge"])
    sh.run(["ip", "addr", "add", f"{settings.bridge_address}/24", "dev", settings.bridge])
    sh.run(["ip", "link", "set", settings.bridge, "up"])
    return True


def remove_bridge(settings: Settings) -> bool:
    if not bridge_exists(settings):
        return False
    sh.run(["ip", "link", "del", settings.bridge])
    return True


def bridge_netfilter_on() -> bool:
    try:
        return BR_NF.read_text().strip() == "1"
    except FileNotFoundError:
        return False


def ensure_bridge_netfilter() -> None:
    if bridge_netfilter_on():
        return
    sh.run(["modprobe", "br_netfilter"], check=False)
    if BR_NF.exists():
        BR_NF.write_text("1\n")
    if not bridge_netfilter_on():
        raise RuntimeError("bridge netfilter is off and br_netfilter cannot be loaded: "
                           "partitions would have no effect")


def table_exists(settings: Settings) -> bool:
    return sh.run(["nft", "list", "table", "inet", settings.nft_table], check=False).returncode == 0


def _guard(settings: Settings) -> str:
    return (f'add rule inet {settings.nft_table} {CHAIN} iifname "{settings.bridge}" '
            f'oifname != "{settings.bridge}" drop comment "tflab-guard: never route the lab outside"\n')


def ensure_table(settings: Settings) -> None:
    if table_exists(settings):
        return
    script = (f"add table inet {settings.nft_table}\n"
              f"add chain inet {settings.nft_table} {CHAIN} "
              "{ type filter hook forward priority 0; policy accept; }\n" + _guard(settings))
    sh.run(["nft", "-f", "-"], input=script)


def remove_table(settings: Settings) -> bool:
    if not table_exists(settings):
        return False
    sh.run(["nft", "delete", "table", "inet", settings.nft_table])
    return True


def partition_rules(settings: Settings, a: Node, b: Node) -> str:
    """Drop traffic between nodes a and b, both ways."""
    return "".join(
        f"add rule inet {settings.nft_table} {CHAIN} ip saddr {src} ip daddr {dst} drop "
        f'comment "{PARTITION_TAG} {a.name} x {b.name}"\n'
        for src, dst in ((a.address, b.address), (b.address, a.address)))


def isolate_rules(settings: Settings, node: Node) -> str:
    """Drop all traffic between the node and every other node. The host still
    reaches it (that goes through input/output, not forward)."""
    return "".join(
        f"add rule inet {settings.nft_table} {CHAIN} {direction} {node.address} drop "
        f'comment "{PARTITION_TAG} {node.name} isolated"\n'
        for direction in ("ip saddr", "ip daddr"))


def apply(settings: Settings, script: str) -> None:
    ensure_table(settings)
    sh.run(["nft", "-f", "-"], input=script)


def heal(settings: Settings) -> None:
    ensure_table(settings)
    sh.run(["nft", "-f", "-"], input=f"flush chain inet {settings.nft_table} {CHAIN}\n" + _guard(settings))


def active_faults(settings: Settings) -> list[str]:
    """The comments of the partition rules in force, deduplicated."""
    if not table_exists(settings):
        return []
    listing = sh.run(["nft", "list", "chain", "inet", settings.nft_table, CHAIN]).stdout
    found: list[str] = []
    for line in listing.splitlines():
        if PARTITION_TAG in line and "comment" in line:
            text = line.split('comment "', 1)[1].rstrip('"').replace(PARTITION_TAG + " ", "", 1)
            if text not in found:
                found.append(text)
    return found
