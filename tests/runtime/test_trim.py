"""The state save's freed memory is handed back (glibc's malloc_trim, found once)."""

from __future__ import annotations

import platform
import subprocess
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


_HEAPS_AFTER_THREADS = """
import ctypes, re, sys, tempfile, threading
from propylon.runtime import trim
if sys.argv[1] == "shared":
    trim.share_malloc_arenas()
def churn():
    blocks = [bytearray(2048) for _ in range(2000)]
    del blocks
threads = [threading.Thread(target=churn) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile("r") as out:
    handle = ctypes.c_void_p(libc.fopen(out.name.encode(), b"w"))
    libc.malloc_info(0, handle)
    libc.fclose(handle)
    print(len(re.findall('<heap nr=', out.read())))
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt is glibc's",
)
def test_threads_share_one_malloc_heap_once_asked() -> None:
    """`propylon run` asks for one heap before its threads start: threads that allocate
    at once otherwise get heaps of their own (and keep their freed chunks)."""

    def heaps(mode: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", _HEAPS_AFTER_THREADS, mode],
            capture_output=True,
            text=True,
            check=True,
        )
        return int(out.stdout)

    assert heaps("shared") == 1
    assert heaps("default") > 1
