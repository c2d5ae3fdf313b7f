"""The `devcluster` fixture: one real dev cluster (devcluster/) for the whole test session.

A cluster that is already running is used as it is. A developer's cluster (`python3 dev.py
cluster up`) is left running; one that a test session started is stopped by the last
session still using it, so that test runs in parallel (several worktrees, one machine)
share it instead of stopping it under each other. Starting is serialized by a lock file.
`$PROPYLON_DEVCLUSTER_INSTANCE` selects the cluster (devcluster/network.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devcluster.cluster import Cluster, run_dir

NODES = int(os.environ.get("PROPYLON_DEVCLUSTER_NODES", "3"))


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    lock = folder.parent / f".{folder.name}.lock"
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _users(folder: Path) -> list[Path]:
    alive = []
    for entry in (folder / "test-users").glob("*"):
        try:
            os.kill(int(entry.name), 0)
            alive.append(entry)
        except (ValueError, ProcessLookupError):
            entry.unlink(missing_ok=True)
    return alive


@pytest.fixture(scope="session")
def devcluster() -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.fail("the dev cluster needs root (network namespaces); run the tests as root")
    folder = run_dir()
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _locked(folder):
        cluster = Cluster.existing()
        if not cluster.is_running():
            cluster = Cluster(folder, node_count=NODES)
            cluster.up()
            (folder / "started-by-tests").touch()
        me = folder / "test-users" / str(os.getpid())
        me.parent.mkdir(exist_ok=True)
        me.touch()
    try:
        yield cluster
    finally:
        with _locked(folder):
            me.unlink(missing_ok=True)
            if (folder / "started-by-tests").exists() and not _users(folder):
                cluster.down()
