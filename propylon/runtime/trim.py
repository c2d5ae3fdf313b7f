"""Give the pages of freed allocations back to the system (glibc's `malloc_trim`).

A state save encodes and writes megabytes of JSON on a thread of its own; glibc keeps
the freed pages in that thread's arena, ~9 MiB of RSS at 5000 routes that no live
object uses (measured: `propylon run` 170 -> 161 MiB after a trim). Elsewhere than
glibc (macOS, musl) this does nothing."""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


# Looked up once, at import: a function of the C library, not state.
_TRIM = _malloc_trim()


def return_freed_memory() -> None:
    """Release free memory at the top of the heaps and whole free pages inside them.
    Runs without the GIL (ctypes releases it): call it from a thread that may wait."""
    if _TRIM is not None:
        _TRIM(0)
