"""Print what a user needs after `make up`: the gateway URLs and an admin token."""
from __future__ import annotations

import sys
from pathlib import Path

import yaml


def main(inventory: str = "inventories/lab") -> int:
    inv = Path(inventory)
    hosts = yaml.safe_load((inv / "hosts.yml").read_text())["all"]
    secrets = yaml.safe_load((inv / ".secrets.yml").read_text())["taskforce_secrets"]
    gateways = hosts["children"]["gateways"]["hosts"]
    print("\nTaskForce is up.")
    for name in gateways:
        h = hosts["hosts"][name]
        print(f"  gateway {name}: http://{h.get('taskforce_address', h['ansible_host'])}:8080")
    first = hosts["hosts"][next(iter(gateways))]
    print(f"\n  export TASKFORCE_URL=http://{first.get('taskforce_address', first['ansible_host'])}:8080")
    print(f"  export TASKFORCE_TOKEN={secrets['api_tokens']['admin']}   # scopes: submit, read, admin")
    print("  .venv/bin/taskforce submit echo --payload '{\"hi\": 1}' --wait")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
