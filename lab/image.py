"""The lab's base image: a Debian 12 rootfs with every package the roles need.

Nodes have no route to any package archive, so everything the roles install is
baked in here. The image is built once and cached under
`<cache_dir>/<recipe hash>/rootfs`; change the recipe and a new image is built
next to the old one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lab import sh
from lab.progress import Progress

# Packages debootstrap installs itself: enough to boot systemd and be reached.
BOOT_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "iproute2", "python3", "openssh-server",
)

# Packages installed into the booted-less image with apt afterwards. The roles
# install the same list with `apt state=present`, which is a no-op here.
PACKAGES = (
    # what Ansible's modules need on a node
    "python3-apt", "sudo", "acl", "procps", "netbase",
    # what the roles deploy
    "nftables", "rabbitmq-server", "python3-venv", "openjdk-17-jre-headless",
    "curl", "ca-certificates",
    # what an operator reaches for while a drill runs
    "iputils-ping", "netcat-openbsd", "less",
)

# Runs inside the image (under systemd-nspawn, not booted) after the packages.
# Everything that would be shared by every node but must be unique per node
# goes here: SSH host keys, machine-id, RabbitMQ's cookie and mnesia.
CUSTOMIZE = r"""
set -eu
systemctl enable systemd-networkd.service ssh.service
# The roles start RabbitMQ once its cookie and config are in place.
systemctl disable rabbitmq-server.service e2scrub_reap.service
# A read-only nspawn console has no use for a login prompt.
systemctl mask console-getty.service
rm -f /var/lib/rabbitmq/.erlang.cookie
rm -rf /var/lib/rabbitmq/mnesia /var/log/rabbitmq/*
rm -f /etc/ssh/ssh_host_*
: > /etc/machine-id
rm -f /etc/hostname /usr/sbin/policy-rc.d
mkdir -p /root/.ssh && chmod 700 /root/.ssh
apt-get clean
"""

# Stops package maintainer scripts from starting services inside the build.
POLICY_RC_D = "#!/bin/sh\nexit 101\n"


@dataclass(frozen=True)
class Recipe:
    suite: str = "bookworm"
    mirror: str = "http://deb.debian.org/debian"
    variant: str = "minbase"
    boot_packages: tuple[str, ...] = BOOT_PACKAGES
    packages: tuple[str, ...] = PACKAGES
    customize: str = CUSTOMIZE
    # Bump when the build procedure changes in a way the fields above miss.
    revision: int = 1


def recipe_hash(recipe: Recipe) -> str:
    """A short, stable digest of everything that shapes the image."""
    canonical = json.dumps(asdict(recipe), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def rootfs_path(cache_dir: Path, recipe: Recipe) -> Path:
    return cache_dir / recipe_hash(recipe) / "rootfs"


def nspawn_chroot(root: Path, script: str) -> list[str]:
    """A command that runs `script` in the image without booting it."""
    return ["systemd-nspawn", "-q", "-D", str(root), "--register=no", "--keep-unit",
            "--settings=no", "/bin/sh", "-c", script]


def ensure_image(cache_dir: Path, recipe: Recipe, progress: Progress) -> Path:
    """Return the cached rootfs for `recipe`, building it first if needed."""
    final = rootfs_path(cache_dir, recipe)
    if final.is_dir():
        progress.say(f"image {final.parent.name}: cached at {final}")
        return final
    building = final.with_name("rootfs.building")
    if building.exists():
        shutil.rmtree(building)
    building.parent.mkdir(parents=True, exist_ok=True)

    with progress.step(f"image {final.parent.name}: debootstrap {recipe.suite} {recipe.variant}"):
        sh.run(["debootstrap", f"--variant={recipe.variant}",
                "--include=" + ",".join(recipe.boot_packages),
                recipe.suite, str(building), recipe.mirror])

    policy = building / "usr/sbin/policy-rc.d"
    policy.write_text(POLICY_RC_D)
    policy.chmod(0o755)
    with progress.step(f"image {final.parent.name}: apt-get install {len(recipe.packages)} packages"):
        install = ("apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -q -y "
                   "--no-install-recommends " + " ".join(recipe.packages))
        sh.run(nspawn_chroot(building, install))

    with progress.step(f"image {final.parent.name}: customize"):
        sh.run(nspawn_chroot(building, recipe.customize))

    (final.parent / "recipe.json").write_text(
        json.dumps(asdict(recipe), indent=2, sort_keys=True) + "\n")
    building.rename(final)
    return final
