"""Mapping a watch event's path to the manifest file it is, without a discovery: valid
for a tree of files that `discovery.discover` found with no symlink inside."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

from propylon.sources.discovery import MANIFEST_SUFFIXES

RESCAN = ("", False)  # `ManifestTree.classify`: only a full `load` can tell


class ManifestTree:
    """The manifest files of a `load` whose directory paths had no symlink inside: there
    a watch event's path names the file itself, so `update` needs no discovery."""

    def __init__(self, roots: Sequence[Path], files: list[str], found: Mapping[str, str]) -> None:
        self.roots = [(os.path.abspath(r), str(r), r.is_dir()) for r in roots]
        self.bases = {base for base, _, _ in self.roots}
        self.files = set(files)
        self.displays = {os.path.abspath(d): d for d in files}
        self.reals = set(found)

    def classify(self, path: str) -> tuple[str, bool] | None:
        """For an absolute changed path: (display path, exists) of the manifest file it
        is; None when it cannot matter (outside the paths, a hidden entry, not a manifest
        name, gone without having been read); `RESCAN` when in doubt."""
        display = self.displays.get(path)
        try:
            st = os.lstat(path)
        except OSError:
            st = None
        if display is not None:
            if st is None:
                return (display, False) if path not in self.bases else RESCAN
            return (display, True) if stat.S_ISREG(st.st_mode) else RESCAN
        for base, given, is_dir in self.roots:
            if path == base:
                return RESCAN  # a path given on the command line appeared or changed type
            if not is_dir or not path.startswith(base.rstrip(os.sep) + os.sep):
                continue
            rel = os.path.relpath(path, base)
            if any(part.startswith(".") for part in Path(rel).parts):
                return None  # skipped by discovery (a plain tree has no symlinks to follow)
            if st is None:
                return None  # created and gone again, never read
            if not stat.S_ISREG(st.st_mode):
                return RESCAN  # a directory moved in, a symlink: discover again
            if not path.lower().endswith(MANIFEST_SUFFIXES):
                return None
            if os.path.realpath(path) in self.reals:
                return RESCAN  # a second name for a file already read
            return os.path.join(given, rel), True
        return None

    def add(self, display: str) -> None:
        self.files.add(display)
        self.displays[os.path.abspath(display)] = display
        self.reals.add(os.path.realpath(display))

    def remove(self, display: str) -> None:
        self.files.discard(display)
        self.displays.pop(os.path.abspath(display), None)
        self.reals.discard(os.path.realpath(display))
