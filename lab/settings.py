"""Where the lab keeps its image, its node state and its network, in one place.

Every path and name can be moved with an environment variable so that a test
(or a second lab on the same host) never touches the real one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    cache_dir: Path
    state_dir: Path
    bridge: str
    subnet_prefix: str  # first three octets, e.g. "10.77.0"
    nft_table: str
    inventory_dir: Path

    @property
    def bridge_address(self) -> str:
        return f"{self.subnet_prefix}.1"

    @property
    def nodes_dir(self) -> Path:
        return self.state_dir / "nodes"

    @property
    def ssh_dir(self) -> Path:
        return self.state_dir / "ssh"

    @property
    def ssh_key(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def hosts_file(self) -> Path:
        """Shared /etc/hosts, bind-mounted read-only into every node."""
        return self.state_dir / "hosts"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "lock"

    @property
    def inventory_file(self) -> Path:
        return self.inventory_dir / "hosts.yml"


def load() -> Settings:
    env = os.environ.get
    return Settings(
        cache_dir=Path(env("TASKFORCE_LAB_CACHE_DIR", "/var/cache/taskforce-lab")),
        state_dir=Path(env("TASKFORCE_LAB_STATE_DIR", "/var/lib/taskforce-lab")),
        bridge=env("TASKFORCE_LAB_BRIDGE", "br-tf"),
        subnet_prefix=env("TASKFORCE_LAB_SUBNET", "10.77.0"),
        nft_table=env("TASKFORCE_LAB_NFT_TABLE", "tflab"),
        inventory_dir=Path(env("TASKFORCE_LAB_INVENTORY_DIR", str(REPO_ROOT / "inventories" / "lab"))),
    )
