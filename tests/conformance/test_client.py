"""The local runner's request checks are as strict as upstream's (conformance/utils/http)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.conformance import client
from tests.conformance.client import Captured, Expect


def answers(monkeypatch: pytest.MonkeyPatch, statuses: list[int]) -> list[int]:
    """The gateway answers these statuses in turn (the last one from then on)."""
    sent: list[int] = []
    it: Iterator[int] = iter(statuses)

    def fake_request(addr: str, e: Expect, **_: object) -> Captured:
        status = next(it, statuses[-1])
        sent.append(status)
        return Captured(status=status, headers={}, body=b"")

    monkeypatch.setattr(client, "request", fake_request)
    monkeypatch.setattr(time, "sleep", lambda _s: None)
    return sent


def test_expect_failure_stops_at_the_first_200(monkeypatch: pytest.MonkeyPatch) -> None:
    # Before: the 200 was taken for "not ready yet" and the following 503s passed it.
    sent = answers(monkeypatch, [503, 200, 503])
    with pytest.raises(client.Refuted, match="should fail, got 200"):
        client.eventually_fails("198.18.0.1:80", Expect("/backendtlspolicy-host-mismatch"))
    assert sent == [503, 200]


def test_expect_failure_passes_on_consecutive_non_200(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = answers(monkeypatch, [503])
    client.eventually_fails("198.18.0.1:80", Expect("/"))
    assert sent == [503] * 5


@pytest.mark.parametrize("timeout", [408, 504])
def test_a_timeout_status_is_no_answer(monkeypatch: pytest.MonkeyPatch, timeout: int) -> None:
    # roundtripper.IsTimeoutError: a 408 or 504 restarts the count of failures.
    sent = answers(monkeypatch, [503, 503, timeout, 503])
    client.eventually_fails("198.18.0.1:80", Expect("/"))
    assert sent == [503, 503, timeout, 503, 503, 503, 503, 503]
