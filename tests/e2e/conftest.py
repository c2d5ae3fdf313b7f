"""Fixtures for the end-to-end tests (the harness is in e2e_harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_harness import (
    Backends,
    Running,
    start_backend,
    start_propylon,
    stop_backend,
    stop_propylon,
    write_walkthrough,
)


@pytest.fixture
def backends() -> Iterator[Backends]:
    http = start_backend("http-server")
    grpc = start_backend("grpc-server")
    try:
        yield Backends(http, grpc)
    finally:
        stop_backend(http)
        stop_backend(grpc)


@pytest.fixture
def propylon(tmp_path: Path, backends: Backends) -> Iterator[Running]:
    manifests = write_walkthrough(tmp_path / "manifests", backends.http.port, backends.grpc.port)
    running = start_propylon(manifests, tmp_path / "state")
    try:
        yield running
    finally:
        stop_propylon(running)
