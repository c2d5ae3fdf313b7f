"""The reconcile loop behind `propylon run` and the walkthrough."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from propylon.runtime.instance import Instance
from propylon.runtime.options import DEFAULT_POOL, RunError, RunOptions
from propylon.runtime.trim import share_malloc_arenas


def run(options: RunOptions) -> int:
    """Serve until interrupted; returns the process exit code."""
    share_malloc_arenas()  # before the loop's, grpc's and our threads start
    asyncio.run(Instance(options).serve())
    # Envoy is stopped and the state saved: exit without tearing the heap down object
    # by object (seconds at tens of thousands of routes, after SIGTERM asked us to go).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


__all__ = ["DEFAULT_POOL", "Instance", "RunError", "RunOptions", "run"]
