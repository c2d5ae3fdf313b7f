"""How the operator reads the agents' reports into Programmed (no API server)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from propylon.kube.nodereport import STATE_ANNOTATION, NodeReports, encode_state
from propylon.resources import ObjectKey

GW = ObjectKey("Gateway", "ns", "gw")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _lease(state: str, renewed: datetime, duration: int = 40) -> dict[str, Any]:
    return {
        "metadata": {"annotations": {STATE_ANNOTATION: state}},
        "spec": {
            "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "leaseDurationSeconds": duration,
        },
    }


def test_programmed_needs_a_live_ack_of_the_current_generation() -> None:
    now = [T0]
    reports = NodeReports("sys", now=lambda: now[0])
    reason, message = reports.verdict(GW, 1) or ("", "")
    assert reason == "Pending" and "node agent" in message

    key = ObjectKey("Lease", "sys", "propylon-agent-a")
    assert reports.accept(key, _lease(encode_state({GW: 1}, None), T0))
    assert reports.verdict(GW, 1) is None
    assert reports.verdict(GW, 2) == ("Pending", "waiting for an Envoy to accept generation 2")
    # Another namespace's Lease is not a report.
    assert not reports.accept(ObjectKey("Lease", "other", "x"), _lease("{}", T0))

    # The agent stops renewing: its report expires.
    assert reports.expire()
    now[0] = T0 + timedelta(seconds=41)
    assert reports.expire()
    assert reports.verdict(GW, 1) == (
        "Pending",
        "waiting for a node agent to report its Envoy's configuration",
    )


def test_a_nack_wins_over_an_ack() -> None:
    reports = NodeReports("sys", now=lambda: T0)
    reports.accept(ObjectKey("Lease", "sys", "a"), _lease(encode_state({GW: 3}, None), T0))
    bad = encode_state({GW: 2}, ("listener 0.0.0.0:80: bind failed", {GW: 3}))
    reports.accept(ObjectKey("Lease", "sys", "b"), _lease(bad, T0))
    reason, message = reports.verdict(GW, 3) or ("", "")
    assert reason == "Invalid" and "bind failed" in message
    assert reports.nacks() == {GW: "listener 0.0.0.0:80: bind failed"}
    # The state is small and bounded: per Gateway, not per route.
    assert len(json.loads(bad)) == 2
