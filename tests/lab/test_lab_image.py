"""The image cache key: equal recipes share an image, any change makes a new one."""

import dataclasses
from pathlib import Path

from lab.image import PACKAGES, Recipe, recipe_hash, rootfs_path


def test_hash_is_stable_and_short():
    assert recipe_hash(Recipe()) == recipe_hash(Recipe())
    digest = recipe_hash(Recipe())
    assert len(digest) == 16 and int(digest, 16) >= 0


def test_every_field_changes_the_hash():
    base = recipe_hash(Recipe())
    changes = {
        "suite": "trixie", "mirror": "http://mirror.invalid/debian", "variant": "buildd",
        "boot_packages": ("systemd",), "packages": PACKAGES + ("htop",),
        "customize": Recipe().customize + "\ntrue\n", "revision": 99,
    }
    for name, value in changes.items():
        assert recipe_hash(dataclasses.replace(Recipe(), **{name: value})) != base, name


def test_rootfs_lives_under_the_hash():
    path = rootfs_path(Path("/var/cache/taskforce-lab"), Recipe())
    assert path == Path("/var/cache/taskforce-lab") / recipe_hash(Recipe()) / "rootfs"


def test_image_has_what_the_roles_and_ansible_need():
    recipe = Recipe()
    wanted = {"python3-apt", "sudo", "nftables", "rabbitmq-server", "python3-venv",
              "openjdk-17-jre-headless", "curl", "ca-certificates", "procps"}
    assert wanted <= set(recipe.packages)
    assert {"systemd", "systemd-sysv", "dbus", "iproute2", "python3", "openssh-server"} <= set(recipe.boot_packages)


def test_image_carries_no_per_node_identity():
    script = Recipe().customize
    assert "rm -f /var/lib/rabbitmq/.erlang.cookie" in script
    assert "/var/lib/rabbitmq/mnesia" in script
    assert "rm -f /etc/ssh/ssh_host_*" in script
    assert ": > /etc/machine-id" in script
    assert "systemctl disable rabbitmq-server.service" in script
