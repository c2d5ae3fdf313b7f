"""Folders a node makes on this machine's own filesystem, listed in the node's state dir
so that `cluster down` removes them: a hostPath volume of type DirectoryOrCreate and a
subPath folder inside a hostPath (the chart's per-node /var/run/propylon/envoy/<node>).
Mount points made for containers are recorded too. A real node's disk goes with the
node; here every node shares the host's.

What a node made for itself (a subPath folder) goes with all it holds. A folder made on
the way, or a hostPath itself, may be shared with other nodes or other clusters on this
machine: it is removed only once empty.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

LEDGER_NAME = "host-dirs"  # in the node's state dir: one "tree|empty<TAB>path" per line


@dataclass(frozen=True)
class HostDirs:
    ledger: Path | None = None  # None: nothing recorded (unit tests)

    def make(self, path: Path, *, own: bool) -> None:
        """mkdir -p `path`, recording each folder made; `own`: `path` is this node's
        alone (removed with its contents)."""
        made = []
        missing = path
        while not missing.exists() and missing != missing.parent:
            made.append(missing)
            missing = missing.parent
        path.mkdir(parents=True, exist_ok=True)
        if self.ledger is None or not made:
            return
        lines = [f"{'tree' if own and p == path else 'empty'}\t{p}\n" for p in reversed(made)]
        with self.ledger.open("a") as ledger:
            ledger.write("".join(lines))

    def mount_points(self, targets: list[str]) -> None:
        """Make the missing mount points of a container on the host (the container's
        mount namespace sees the host's folders; its launcher would `mkdir -p` them
        there), recorded; not those under an earlier mount, which are made inside it."""
        for index, target in enumerate(targets):
            path = Path(target)
            under_earlier = any(path.is_relative_to(t) for t in targets[:index])
            if under_earlier or not path.is_absolute() or path.exists():
                continue
            try:
                self.make(path, own=False)
            except OSError:
                continue  # e.g. a file on the way: the launcher reports it


def remove_recorded(*ledgers: Path) -> list[Path]:
    """Remove what the `ledgers` list (every node's: their shared folders go once all
    of the nodes' own are gone): owned folders first, then the others deepest first;
    return what is gone."""
    entries: set[tuple[str, Path]] = set()
    for ledger in ledgers:
        try:
            lines = ledger.read_text().splitlines()
        except FileNotFoundError:
            continue
        for line in lines:
            kind, _, name = line.partition("\t")
            if name and Path(name).is_absolute():
                entries.add((kind, Path(name)))
    order = sorted(entries, key=lambda e: (e[0] != "tree", -len(e[1].parts), str(e[1])))
    removed = []
    for kind, path in order:
        if not path.is_dir() or path.is_symlink():
            continue
        if kind == "tree":
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                path.rmdir()
            except OSError:
                continue  # not empty: another node's or another cluster's folders
        if not path.exists():
            removed.append(path)
    return removed
