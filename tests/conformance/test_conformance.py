"""Every ported conformance test, through pytest (marker ``conformance``): about 35 s.

The same run with the upstream-format report is one command: ``python -m tests.conformance
--report conformance/propylon-v1.4.1-report.yaml``; ``-m "not conformance"`` leaves it out.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import (  # noqa: F401  (registers the tests)
    suites,
    suites_backend_grpc_tls,
    suites_core,
    suites_http_ext,
)
from .harness import Cluster
from .runner import EXCEPTIONS, TESTS, run_one

pytestmark = pytest.mark.conformance


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.mark.parametrize("name", sorted(TESTS))
def test_conformance(cluster: Cluster, name: str) -> None:
    if name in EXCEPTIONS:
        pytest.skip(EXCEPTIONS[name])
    result = run_one(cluster, TESTS[name])
    assert result.outcome == "passed", result.message
