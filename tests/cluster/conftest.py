"""Mark every test here `cluster` and skip them all, with the reason, when the
lab is not up. The helpers live in cluster_lab.py."""

from tests.cluster.cluster_lab import pytest_collection_modifyitems, secrets  # noqa: F401  (pytest hooks and fixtures)
