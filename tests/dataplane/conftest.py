"""Fixtures of the data plane tests. Test modules import what they share from
dataplane_helpers, never from here: another folder's conftest.py is also `conftest`."""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from dataplane_helpers import Plane

from propylon.dataplane import EnvoySupervisor
from propylon.xds import AdsServer

_ids = itertools.count()


@pytest.fixture(params=[True, False], ids=["delta", "sotw"])
def delta(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
async def plane(tmp_path: Path, delta: bool) -> AsyncIterator[Plane]:
    logging.getLogger("propylon").setLevel(logging.DEBUG)
    large_pushes: list[None] = []
    xds = AdsServer(after_large_push=lambda: large_pushes.append(None))
    address = await xds.start("127.0.0.1:0")
    envoy = EnvoySupervisor(
        binary=None,
        xds_address=address,
        admin_address="127.0.0.1:0",
        node_id=f"test-{next(_ids)}",
        workdir=tmp_path / "envoy",
        delta=delta,
    )
    await envoy.start()
    try:
        yield Plane(xds, envoy, large_pushes)
    finally:
        await envoy.stop()
        await xds.stop()
