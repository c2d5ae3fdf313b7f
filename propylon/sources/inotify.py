"""Linux inotify, read on the event loop: changed paths as soon as a write completes.

watchfiles hands events over from a thread only after a quiet `step`, a few
milliseconds per change; here the kernel's queue is read the moment it becomes readable
(`loop.add_reader`). Only events that mean "this file's content is complete" are
reported: a file closed after writing, renamed in or out, deleted (and a symlink
created), never a file just created, so a manifest is not read half written. Anything
a per-file event cannot describe (a directory created, moved or deleted, the queue
overflowing, a watched root gone) is reported as the directory path or as an empty
batch, which the file source answers with a rescan.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import os
import struct
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x1000000
IN_ISDIR = 0x40000000

_MASK = (
    IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
)
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        lib.inotify_init1.argtypes = [ctypes.c_int]
        lib.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        return lib
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


def available() -> bool:
    return _LIBC is not None


class InotifyWatch:
    """Watches `roots` (directories; recursively if asked) and calls `report` with each
    batch of changed paths (absolute). An empty batch means "rescan everything"."""

    def __init__(
        self, roots: Iterable[Path], *, recursive: bool, report: Callable[[set[str]], None]
    ) -> None:
        if _LIBC is None:
            raise OSError(errno.ENOSYS, "inotify is not available")
        self._lib = _LIBC
        self._recursive = recursive
        self._report = report
        self._fd = self._lib.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self._dirs: dict[int, str] = {}  # watch descriptor -> directory
        self._roots = {os.path.abspath(r) for r in roots}
        try:
            for root in sorted(self._roots):
                self._add_tree(root)
        except BaseException:
            os.close(self._fd)
            raise
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._readable)

    def close(self) -> None:
        if self._fd < 0:
            return
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
        os.close(self._fd)
        self._fd = -1

    def _add(self, directory: str) -> None:
        wd = self._lib.inotify_add_watch(self._fd, os.fsencode(directory), _MASK)
        if wd < 0:
            err = ctypes.get_errno()
            if err in (errno.ENOENT, errno.ENOTDIR):
                return  # gone already: its parent's event triggers a rescan
            raise OSError(err, f"{os.strerror(err)}: {directory}")
        self._dirs[wd] = directory

    def _add_tree(self, root: str) -> None:
        self._add(root)
        if not self._recursive:
            return
        for dirpath, dirnames, _ in os.walk(root):
            # Hidden directories are skipped by discovery too (see `FileSource`).
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for d in dirnames:
                self._add(os.path.join(dirpath, d))

    def _readable(self) -> None:
        changed: set[str] = set()
        rescan = False
        while True:
            try:
                data = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                break
            except OSError:
                rescan = True
                break
            if not data:
                break
            rescan |= self._parse(data, changed)
        if rescan:
            self._report(set())
        elif changed:
            self._report(changed)

    def _parse(self, data: bytes, changed: set[str]) -> bool:
        """Collects changed paths; True when only a rescan can tell what changed."""
        rescan = False
        offset = 0
        while offset < len(data):
            wd, mask, _, length = _HEADER.unpack_from(data, offset)
            offset += _HEADER.size
            name = data[offset : offset + length].rstrip(b"\0")
            offset += length
            if mask & IN_Q_OVERFLOW:
                rescan = True
                continue
            directory = self._dirs.get(wd)
            if directory is None:
                continue
            if mask & IN_IGNORED:
                del self._dirs[wd]
                continue
            if mask & (IN_DELETE_SELF | IN_MOVE_SELF):
                if directory in self._roots:
                    rescan = True  # a watched root itself went away
                continue
            path = os.path.join(directory, os.fsdecode(name))
            if mask & IN_ISDIR:
                if mask & (IN_MOVED_FROM | IN_DELETE):
                    rescan = True  # the files under it went without events of their own
                    continue
                if self._recursive and mask & (IN_CREATE | IN_MOVED_TO):
                    self._add_tree(path)
                changed.add(path)  # a directory path: the source rescans
            elif mask & IN_CREATE and not os.path.islink(path):
                continue  # a new regular file: reported once it is closed after writing
            else:
                changed.add(path)
        return rescan
