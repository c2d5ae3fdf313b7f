"""Give the pages of freed allocations back to the system (glibc's `malloc_trim`).

A state save encodes and writes megabytes of JSON on a thread of its own; glibc keeps
the freed pages in that thread's arena, ~9 MiB of RSS at 5000 routes that no live
object uses (measured: `propylon run` 170 -> 161 MiB after a trim). Elsewhere than
glibc (macOS, musl) this does nothing."""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable


def _libc_function(name: str) -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function: Callable[..., int] = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):  # not glibc
        return None
    return function


# Looked up once, at import: functions of the C library, not state.
_TRIM = _libc_function("malloc_trim")
_MALLOPT = _libc_function("mallopt")
_M_ARENA_MAX = -8  # glibc's malloc.h


def share_malloc_arenas(arenas: int = 1) -> None:
    """At most `arenas` glibc heaps for the process, from now on. glibc gives each
    thread that allocates while the others hold the heaps one of its own (up to 8 per
    core): the worker, the encode and save threads, grpc's threads, each left with
    megabytes of freed chunks between live ones that no trim returns, and how many
    there were varied from run to run (RSS 150-158 MiB at 5000 routes). The threads
    that allocate much are Python threads, which take turns for the interpreter
    anyway (start-up and new-route latency at 5000 routes within the noise of
    `bench/scale.py`). glibc fixes the limit when a
    second heap is first needed: call this before threads start."""
    if _MALLOPT is not None:
        _MALLOPT(_M_ARENA_MAX, arenas)


def return_freed_memory() -> None:
    """Release free memory at the top of the heaps and whole free pages inside them.
    Runs without the GIL (ctypes releases it): call it from a thread that may wait."""
    if _TRIM is not None:
        _TRIM(0)
