"""The state save's freed memory is handed back (glibc's malloc_trim, found once)."""

from __future__ import annotations

import platform
import sys

import pytest

from propylon.runtime import trim


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="malloc_trim is glibc's",
)
def test_malloc_trim_is_found_on_glibc_and_runs() -> None:
    assert trim._TRIM is not None
    blocks = [bytearray(4096) for _ in range(2000)]  # ~8 MiB, then freed
    del blocks
    trim.return_freed_memory()


def test_without_the_function_it_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trim, "_TRIM", None)
    trim.return_freed_memory()
