"""Crash-loop back-off and restart policy, as the kubelet applies them."""

from __future__ import annotations

import pytest

from devcluster.node.backoff import CrashBackoff, should_restart


def test_backoff_doubles_from_10s_and_caps_at_5_minutes() -> None:
    backoff = CrashBackoff()
    delays = [backoff.delay_after_exit(1.0) for _ in range(8)]
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300]


def test_backoff_resets_after_a_long_run() -> None:
    backoff = CrashBackoff()
    for _ in range(4):
        backoff.delay_after_exit(1.0)
    assert backoff.delay_after_exit(601.0) == 10
    assert backoff.delay_after_exit(1.0) == 20


@pytest.mark.parametrize(
    ("policy", "exit_code", "restart"),
    [
        ("Always", 0, True),
        ("Always", 1, True),
        ("OnFailure", 0, False),
        ("OnFailure", 2, True),
        ("Never", 1, False),
    ],
)
def test_restart_policy(policy: str, exit_code: int, restart: bool) -> None:
    assert should_restart(policy, exit_code) is restart
