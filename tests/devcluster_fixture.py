"""The `devcluster` fixture: one real dev cluster (devcluster/) for the whole test session.

A cluster that is already running (a developer's `python3 dev.py cluster up`) is used as
it is and left running; otherwise the fixture starts one with two nodes and stops it at
the end of the session, leaving no process or namespace behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from devcluster.cluster import Cluster, run_dir

NODES = int(os.environ.get("PROPYLON_DEVCLUSTER_NODES", "2"))


@pytest.fixture(scope="session")
def devcluster() -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.fail("the dev cluster needs root (network namespaces); run the tests as root")
    existing = Cluster.existing()
    if existing.is_running():
        yield existing
        return
    cluster = Cluster(run_dir(), node_count=NODES)
    cluster.up()
    try:
        yield cluster
    finally:
        cluster.down()
