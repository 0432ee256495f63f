"""Shared test configuration: markers are registered in pyproject.toml."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.postgres_cluster import ClusterUnavailable, PrivateCluster, private_cluster

pytest_plugins = ["forum_server.testing"]

# No per-example time limit: on the shared 2-core machine (and under pytest-xdist) one
# example can take 250 ms for reasons that have nothing to do with the code; performance is
# measured in scripts/bench, never asserted in tests.
settings.register_profile("forum", deadline=None)
settings.load_profile("forum")

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The team's shared/ folder (test vectors live there; never copied into the repo)."""
    return Path(os.environ.get("FORUM_SHARED_DIR", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_testdata() -> Path:
    path = shared_dir() / "testdata"
    if not path.is_dir():
        pytest.skip(f"shared test vectors not found at {path} (set FORUM_SHARED_DIR)")
    return path


@pytest.fixture
def private_postgres() -> Iterator[PrivateCluster]:
    """A PostgreSQL cluster of the test's own (see tests/postgres_cluster.py), for tests that
    restart PostgreSQL or need password authentication; skips without the server binaries,
    or fails under CI=true / FORUM_REQUIRE_POSTGRES=1."""
    try:
        context = private_cluster()
        cluster = context.__enter__()
    except ClusterUnavailable as exc:
        message = f"this test runs a PostgreSQL cluster of its own: {exc}"
        if (
            os.environ.get("CI", "").lower() == "true"
            or os.environ.get("FORUM_REQUIRE_POSTGRES") == "1"
        ):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield cluster
    finally:
        context.__exit__(None, None, None)
