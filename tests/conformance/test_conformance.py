"""The fast representative subset of the conformance runner (marker ``conformance``).

The full suite is one command: ``python -m tests.conformance --report
conformance/propylon-v1.4.1-report.yaml`` (see tests/conformance/README.md).
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
from .harness import SHARED, Cluster
from .runner import TESTS, run_one

FAST = sorted(name for name, test in TESTS.items() if test.fast)

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.skipif(not SHARED.exists(), reason="conformance data absent"),
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.mark.parametrize("name", FAST)
def test_conformance(cluster: Cluster, name: str) -> None:
    result = run_one(cluster, TESTS[name])
    assert result.outcome == "passed", result.message
