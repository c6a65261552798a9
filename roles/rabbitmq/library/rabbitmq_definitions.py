#!/usr/bin/python
"""Converge a RabbitMQ cluster's vhosts, users, permissions and policies.

Reads the live definitions with `rabbitmqctl export_definitions`, compares them
with what is asked for, and imports only the difference with
`rabbitmqctl import_definitions` (read from stdin). Passwords are compared
against the stored salted hashes and sent only as hashes: no password ever
appears on a command line or in the module's output.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: rabbitmq_definitions
short_description: Converge RabbitMQ vhosts, users, permissions and policies
options:
  vhosts:
    description: Virtual hosts that must exist.
    type: list
    elements: str
    default: []
  users:
    description: Users that must exist, each with name, tags and permissions
      (a list of {vhost, configure, write, read}).
    type: list
    elements: dict
    default: []
  passwords:
    description: Each user's password, by user name. Kept apart so that only they are hidden from logs.
    type: dict
    default: {}
  absent_users:
    description: Users that must not exist (for example guest).
    type: list
    elements: str
    default: []
  policies:
    description: Policies that must exist, each with vhost, name, pattern, apply_to, priority, definition.
    type: list
    elements: dict
    default: []
  rabbitmqctl:
    description: Path of rabbitmqctl.
    type: str
    default: rabbitmqctl
"""

import base64
import hashlib
import json
import os

from ansible.module_utils.basic import AnsibleModule

HASHES = {
    "rabbit_password_hashing_sha256": hashlib.sha256,
    "rabbit_password_hashing_sha512": hashlib.sha512,
}
NEW_HASH = "rabbit_password_hashing_sha256"


def password_hash(password: str, algorithm: str = NEW_HASH, salt: bytes | None = None) -> str:
    """RabbitMQ's stored form: base64(salt + H(salt + utf8 password)), 4-byte salt."""
    salt = os.urandom(4) if salt is None else salt
    digest = HASHES[algorithm](salt + password.encode("utf-8")).digest()
    return base64.b64encode(salt + digest).decode("ascii")


def password_matches(password: str, stored: str, algorithm: str) -> bool:
    if algorithm not in HASHES or not stored:
        return False
    raw = base64.b64decode(stored)
    return password_hash(password, algorithm, raw[:4]) == stored


def normal_tags(tags) -> list[str]:
    if isinstance(tags, str):
        tags = [t for t in tags.replace(",", " ").split() if t]
    return sorted(tags or [])


def plan(current: dict, vhosts, users, passwords, absent_users, policies):
    """Return (definitions to import, users to delete, human-readable changes)."""
    changes: list[str] = []
    wanted: dict = {"users": [], "vhosts": [], "permissions": [], "policies": []}

    have_vhosts = {v["name"] for v in current.get("vhosts", [])}
    for name in vhosts:
        if name not in have_vhosts:
            wanted["vhosts"].append({"name": name})
            changes.append(f"vhost {name}: create")

    have_users = {u["name"]: u for u in current.get("users", [])}
    have_perms = {(p["user"], p["vhost"]): p for p in current.get("permissions", [])}
    for user in users:
        name = user["name"]
        password = passwords.get(name)
        if not password:
            raise ValueError(f"no password given for user {name}")
        tags = normal_tags(user.get("tags", []))
        existing = have_users.get(name)
        reasons = []
        if existing is None:
            reasons.append("create")
        else:
            if not password_matches(password, existing.get("password_hash", ""),
                                    existing.get("hashing_algorithm", NEW_HASH)):
                reasons.append("password")
            if normal_tags(existing.get("tags", [])) != tags:
                reasons.append("tags")
        if reasons:
            wanted["users"].append({"name": name, "password_hash": password_hash(password),
                                    "hashing_algorithm": NEW_HASH, "tags": tags})
            changes.append(f"user {name}: {', '.join(reasons)}")
        for perm in user.get("permissions", []):
            entry = {"user": name, "vhost": perm["vhost"], "configure": perm.get("configure", ""),
                     "write": perm.get("write", ""), "read": perm.get("read", "")}
            old = have_perms.get((name, perm["vhost"]))
            if old is None or any(old.get(k) != entry[k] for k in ("configure", "write", "read")):
                wanted["permissions"].append(entry)
                changes.append(f"permissions {name}@{perm['vhost']}: set")

    have_policies = {(p["vhost"], p["name"]): p for p in current.get("policies", [])}
    for policy in policies:
        entry = {"vhost": policy["vhost"], "name": policy["name"], "pattern": policy["pattern"],
                 "apply-to": policy.get("apply_to", "all"), "priority": int(policy.get("priority", 0)),
                 "definition": policy["definition"]}
        old = have_policies.get((entry["vhost"], entry["name"]))
        if old is None or any(old.get(k) != entry[k] for k in ("pattern", "apply-to", "priority", "definition")):
            wanted["policies"].append(entry)
            changes.append(f"policy {entry['name']}@{entry['vhost']}: set")

    delete = [name for name in absent_users if name in have_users]
    changes += [f"user {name}: delete" for name in delete]
    return wanted, delete, changes


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            vhosts=dict(type="list", elements="str", default=[]),
            users=dict(type="list", elements="dict", default=[]),
            passwords=dict(type="dict", default={}, no_log=True),
            absent_users=dict(type="list", elements="str", default=[]),
            policies=dict(type="list", elements="dict", default=[]),
            rabbitmqctl=dict(type="str", default="rabbitmqctl"),
        ),
        supports_check_mode=True,
    )
    ctl = module.params["rabbitmqctl"]
    rc, out, err = module.run_command([ctl, "-q", "export_definitions", "-", "--format", "json"])
    if rc != 0:
        module.fail_json(msg=f"rabbitmqctl export_definitions failed: {err.strip() or out.strip()}")
    try:
        current = json.loads(out[out.index("{"):])
    except ValueError as exc:
        module.fail_json(msg=f"cannot parse the exported definitions: {exc}")

    try:
        wanted, delete, changes = plan(current, module.params["vhosts"], module.params["users"],
                                       module.params["passwords"], module.params["absent_users"],
                                       module.params["policies"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    changed = bool(changes)
    if changed and not module.check_mode:
        if any(wanted.values()):
            document = dict(wanted, rabbit_version=current.get("rabbit_version", ""))
            rc, out, err = module.run_command([ctl, "-q", "import_definitions", "--format", "json"],
                                              data=json.dumps(document), binary_data=True)
            if rc != 0:
                module.fail_json(msg=f"rabbitmqctl import_definitions failed: {err.strip() or out.strip()}",
                                 changes=changes)
        for name in delete:
            rc, out, err = module.run_command([ctl, "-q", "delete_user", name])
            if rc != 0:
                module.fail_json(msg=f"rabbitmqctl delete_user {name} failed: {err.strip()}", changes=changes)
    module.exit_json(changed=changed, changes=changes)


if __name__ == "__main__":
    main()
