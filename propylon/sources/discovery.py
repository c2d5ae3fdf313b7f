"""Finding the manifest files under the paths given, and what to watch for changes.

Paths may be files (any extension) or directories, read recursively for `.yaml`, `.yml`
and `.json` (entries whose name starts with "." are skipped, which also skips the
`..data` indirection of a mounted ConfigMap while following its symlinked files)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from propylon.store import Diagnostic, error

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True, slots=True)
class Discovery:
    """`files`: the manifest files (display paths, sorted, each once); `problems`: with
    the paths themselves; `found`: real path -> display path; `plain`: every path exists
    and no symlink was met below a directory path (then a watch event's path names the
    file itself: see `events.ManifestTree`)."""

    files: list[str]
    problems: list[Diagnostic]
    found: dict[str, str]
    plain: bool


def discover(paths: Sequence[Path]) -> Discovery:
    found: dict[str, str] = {}  # real path -> display path
    problems: list[Diagnostic] = []
    plain = True
    for root in paths:
        if root.is_dir():
            visited: set[str] = set()
            for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
                real = os.path.realpath(dirpath)
                if real in visited:  # a symlink loop or a second way to the same dir
                    dirnames[:] = []
                    plain = False
                    continue
                visited.add(real)
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                if plain and any(os.path.islink(os.path.join(dirpath, d)) for d in dirnames):
                    plain = False
                for name, is_file, is_link in _entries(dirpath, filenames):
                    if name.startswith(".") or not name.lower().endswith(MANIFEST_SUFFIXES):
                        continue
                    full = os.path.join(dirpath, name)
                    plain = plain and not is_link
                    if is_file:
                        # A plain file's real path is its real directory + its name
                        # (realpath costs a syscall per component, per file).
                        path = os.path.realpath(full) if is_link else os.path.join(real, name)
                        found.setdefault(path, full)
        elif root.exists():
            found.setdefault(os.path.realpath(root), str(root))
            plain = plain and not os.path.islink(root)
        else:
            problems.append(error("no such file or directory", file=str(root)))
            plain = False
    return Discovery(sorted(found.values()), problems, found, plain and not problems)


def _entries(dirpath: str, filenames: list[str]) -> list[tuple[str, bool, bool]]:
    """(name, is a file, is a symlink) for `filenames`, sorted, from one directory scan
    (the file type comes with the directory entry: no stat per file)."""
    wanted = set(filenames)
    try:
        with os.scandir(dirpath) as scan:
            out = [(e.name, e.is_file(), e.is_symlink()) for e in scan if e.name in wanted]
    except OSError:
        out = [(n, os.path.isfile(os.path.join(dirpath, n)), True) for n in filenames]
    return sorted(out)


def is_relevant(paths: Sequence[Path], changed_path: str | Path) -> bool:
    """Could a change at this (absolute or relative) path matter to a source of `paths`?"""
    target = os.path.abspath(changed_path)
    for root in paths:
        base = os.path.abspath(root)
        if target == base:
            return True
        if target.startswith(base.rstrip(os.sep) + os.sep):
            rel = os.path.relpath(target, base)
            return not any(part.startswith(".") for part in Path(rel).parts)
    return False


@dataclass(frozen=True, slots=True)
class WatchPlan:
    recursive: tuple[Path, ...]
    flat: tuple[Path, ...]


def watch_plan(paths: Sequence[Path]) -> WatchPlan:
    """What to watch: each directory path recursively; for a file path, its parent
    directory but not recursively (editors save by renaming a new file over the old
    one, which a watch on the file itself would lose); for a missing path, its nearest
    existing ancestor, not recursively (the periodic rescan and a new plan take over
    once it appears)."""
    recursive: list[str] = []
    flat: list[str] = []
    for path in paths:
        if path.is_dir():
            recursive.append(os.path.abspath(path))
            continue
        candidate = Path(os.path.abspath(path)).parent
        while not candidate.is_dir() and candidate != candidate.parent:
            candidate = candidate.parent
        flat.append(str(candidate))

    def inside(a: str, b: str) -> bool:
        return a == b or a.startswith(b.rstrip(os.sep) + os.sep)

    rec = sorted({r for r in recursive if not any(r != o and inside(r, o) for o in recursive)})
    flt = sorted({f for f in flat if not any(inside(f, r) for r in rec)})
    return WatchPlan(tuple(Path(r) for r in rec), tuple(Path(f) for f in flt))
