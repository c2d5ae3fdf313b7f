"""The reconcile loop behind `propylon run` and the walkthrough."""

from __future__ import annotations

import asyncio

from propylon.runtime.instance import Instance
from propylon.runtime.options import DEFAULT_POOL, RunError, RunOptions


def run(options: RunOptions) -> int:
    """Serve until interrupted; returns the process exit code."""
    asyncio.run(Instance(options).serve())
    return 0


__all__ = ["DEFAULT_POOL", "Instance", "RunError", "RunOptions", "run"]
