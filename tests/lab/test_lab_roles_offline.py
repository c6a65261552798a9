"""Static checks that keep the roles usable on offline hosts (the lab's nodes,
air-gapped sites): an apt task may only refresh the package lists when a
package is missing. `cache_valid_time` on its own turns `update_cache` on, so
it must be omitted whenever nothing is missing."""

from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROLES = Path(__file__).resolve().parents[2] / "roles"


def apt_tasks():
    for path in sorted(ROLES.glob("*/tasks/*.yml")):
        for task in yaml.safe_load(path.read_text()) or []:
            for key in ("ansible.builtin.apt", "apt"):
                if isinstance(task, dict) and key in task:
                    yield f"{path.relative_to(ROLES)}: {task.get('name')}", task[key]


def test_there_are_apt_tasks_to_check():
    assert len(list(apt_tasks())) >= 3


@pytest.mark.parametrize("where, args", list(apt_tasks()), ids=lambda v: v if isinstance(v, str) else "")
def test_apt_only_refreshes_lists_when_a_package_is_missing(where, args):
    assert args.get("state", "present") == "present", where
    update = str(args.get("update_cache", "false"))
    assert update.startswith("{{"), f"{where}: update_cache must depend on a missing package"
    if "cache_valid_time" in args:
        assert "omit" in str(args["cache_valid_time"]), f"{where}: cache_valid_time must be omitted when nothing is missing"
