"""Waiting on a condition with a deadline in the async Kubernetes-mode tests (never a
sleep as synchronisation). Test modules import it from here, not from conftest.py: every
test folder's conftest is a module named `conftest`, and a run of several folders loads
only one of them under that name."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T] | T], *, timeout: float = 20.0, what: str = ""
) -> T:
    """Poll `probe` until it returns something truthy (not a sleep as synchronisation:
    a condition with a deadline)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        value = probe()
        if asyncio.iscoroutine(value) or isinstance(value, Awaitable):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        last = value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or probe}: last {last!r}")
