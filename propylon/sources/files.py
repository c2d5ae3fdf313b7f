"""The file source: manifests in files and directories -> a `ChangeSet` + diagnostics.

A file holds one or more YAML documents; a document may be a Kubernetes `List`
(`kind: List`, or `kind: <Something>List` with `items`).

Rules:
- Every problem becomes a `Diagnostic` naming the file, the document (0-based), the
  object and the field. An invalid object affects only itself.
- Never lost config: a file that cannot be read or parsed keeps the objects it held the
  last time it could be; an object whose new version is invalid keeps its last valid
  version from the same file. Both are reported.
- Unknown kinds are reported as warnings and ignored.
- The same object (kind, namespace, name) defined twice: the definition that was there
  first wins (the one previously loaded, else the first by sorted path and document
  order); the other is reported, naming both places.
- Files are re-read only when their (mtime, size, inode) changed or the caller says so,
  and re-parsed only when their bytes changed (sha256), and then only the documents
  whose text changed.

The steps, one module each: `discovery` (which files), `parsing` (one file's bytes ->
objects, pure), `events` (a watch event -> the file it is), `assembly` (duplicate
resolution into the complete set). `FileSource` ties them together and does the I/O.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from propylon.resources.meta import ObjectKey
from propylon.sources.assembly import Assembly, changed_keys
from propylon.sources.discovery import (
    MANIFEST_SUFFIXES,
    WatchPlan,
    discover,
    is_relevant,
    watch_plan,
)
from propylon.sources.events import RESCAN, ManifestTree
from propylon.sources.parsing import (
    FileResult,
    ParsedObject,
    ParseFn,
    failed_result,
    parse_file,
    same_yield,
)
from propylon.store import ChangeSet, Diagnostic, Origin, Resource

__all__ = [
    "MANIFEST_SUFFIXES",
    "FileResult",
    "FileSource",
    "ParseFn",
    "ParsedObject",
    "WatchPlan",
    "default_parse",
    "load_paths",
    "parse_file",
]

_FALLBACK_CLUSTER_SCOPED = frozenset(
    {
        "GatewayClass",
        "CiliumLoadBalancerIPPool",
        "CiliumClusterwideNetworkPolicy",
        "Namespace",
        "CustomResourceDefinition",
    }
)
_CRD = "CustomResourceDefinition"


def default_parse(doc: Mapping[str, Any]) -> Resource:
    """`propylon.resources.parse_object`, imported when first needed."""
    module = importlib.import_module("propylon.resources")
    parse: ParseFn = module.parse_object
    return parse(doc)


def _cluster_scoped_kinds() -> frozenset[str]:
    try:
        module = importlib.import_module("propylon.resources")
    except ImportError:  # pragma: no cover - resources always importable in practice
        return _FALLBACK_CLUSTER_SCOPED
    kinds = getattr(module, "CLUSTER_SCOPED_KINDS", None)
    return frozenset(kinds) if kinds else _FALLBACK_CLUSTER_SCOPED


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class FileSource:
    """Loads the manifests under `paths`, caching per file; `load()` returns the complete
    desired set each time, re-reading only what changed."""

    def __init__(
        self,
        paths: Sequence[Path | str],
        *,
        parse: ParseFn | None = None,
        source: str = "files",
        crds: Sequence[Path | str] = (),
    ) -> None:
        """`crds`: CustomResourceDefinition files (`--crds`); objects of their kinds, and
        of the kinds of CRDs among the manifests themselves, are validated against them
        (see `propylon.sources.crds`). Raises `CRDLoadError` for a CRD file it cannot use."""
        self.paths = tuple(Path(p) for p in paths)
        self.source = source
        self._base_parse = parse or default_parse
        self._crd_paths = tuple(Path(p) for p in crds)
        self._crds: dict[ObjectKey, Resource] = {}  # the CRDs among the manifests
        self._parse = self._crd_parse() if self._crd_paths else self._base_parse
        self._cache: dict[str, FileResult] = {}
        self._origins: dict[ObjectKey, Origin] = {}
        self._cluster_scoped: frozenset[str] | None = None
        # What `update` patches (all set by `load`): see `ManifestTree` and `Assembly`.
        self._tree: ManifestTree | None = None
        self._assembly: Assembly | None = None
        self._last: ChangeSet | None = None
        self._problems: list[Diagnostic] = []  # discovery's, at the last full load

    # -- discovery -----------------------------------------------------------------

    def discover(self) -> tuple[list[str], list[Diagnostic]]:
        """Manifest files under the paths (sorted, each once) and problems with paths."""
        found = discover(self.paths)
        return found.files, found.problems

    def is_relevant(self, changed_path: str | Path) -> bool:
        """Could a change at this (absolute or relative) path matter to this source?"""
        return is_relevant(self.paths, changed_path)

    def watch_plan(self) -> WatchPlan:
        """What to watch (see `discovery.watch_plan`)."""
        return watch_plan(self.paths)

    # -- loading -------------------------------------------------------------------

    def load(
        self,
        changed: Iterable[str | Path] = (),
        *,
        known: Mapping[ObjectKey, Origin] | None = None,
    ) -> ChangeSet:
        """Read what changed and return the complete desired set.

        `changed`: paths known to have changed (re-read even if their stat looks the
        same). `known`: where each object was before (to settle duplicates in favour of
        the older definition); defaults to this source's previous result."""
        if self._cluster_scoped is None:
            self._cluster_scoped = _cluster_scoped_kinds()
        forced = {os.path.abspath(p) for p in changed}
        found = discover(self.paths)
        files, problems = found.files, found.problems
        tree = ManifestTree(self.paths, files, found.found) if found.plain else None
        results: dict[str, FileResult] = {}
        for path in files:
            results[path] = self._load_file(path, force=os.path.abspath(path) in forced)
        last = self._last
        if last is not None and known is None and self._unchanged(results, problems):
            # The periodic rescan's usual finding: every file as it was. The assembly
            # of the complete set (0.15 s at 30 000 objects, every 10 s while idle)
            # would give the same result.
            self._tree = tree
            return last
        self._cache = results
        self._problems = problems
        previous_origins = self._origins if known is None else known
        assembly = Assembly(problems)
        assembly.full(files, results, previous_origins)
        self._origins = assembly.origins
        self._tree, self._assembly = tree, assembly
        self._last = assembly.changeset(self.source, None, frozenset())
        crds = {k: o.resource for k, o in self._last.objects.items() if k.kind == _CRD}
        if crds != self._crds:
            return self._reparse_with(crds)
        return self._last

    def _unchanged(self, results: Mapping[str, FileResult], problems: list[Diagnostic]) -> bool:
        """Whether a load found the same files, each the same result, as the last one."""
        cache = self._cache
        return (
            problems == self._problems
            and len(results) == len(cache)
            and all(cache.get(path) is result for path, result in results.items())
        )

    def _crd_parse(self) -> ParseFn:
        from propylon.sources.crds import crd_parse, load_crd_files  # only when CRDs exist

        schemas = load_crd_files(self._crd_paths)
        for crd in self._crds.values():
            schemas.install(crd.document())  # type: ignore[attr-defined]
        return crd_parse(schemas)

    def _reparse_with(self, crds: dict[ObjectKey, Resource]) -> ChangeSet:
        """The CRDs among the manifests changed: install them (as a cluster would) and
        read every file again, so that objects of their kinds are checked against them."""
        self._crds = crds
        self._parse = self._crd_parse() if crds or self._crd_paths else self._base_parse
        self._cache.clear()
        return self.load()

    def update(self, changed: Iterable[str | Path]) -> ChangeSet:
        """`load(changed)` driven by watch events: re-read only the files named by
        `changed` and patch the previous result, instead of finding and stat-ing every
        file. Falls back to `load(changed)` whenever an event is not simply a manifest
        file created, modified or removed (a directory, a symlink, a path given on the
        command line, or no previous `load`); the watcher's periodic `load()` remains the
        safety net for missed events. Returns the previous ChangeSet object itself when
        nothing changed."""
        paths = [os.path.abspath(p) for p in changed]
        tree, assembly, last = self._tree, self._assembly, self._last
        if tree is None or assembly is None or last is None or not paths:
            return self.load(paths)
        touched: dict[str, FileResult | None] = {}
        for path in paths:
            verdict = tree.classify(path)
            if verdict is None:
                continue
            if verdict is RESCAN:
                return self.load(paths)
            display, exists = verdict
            if exists:
                touched[display] = self._load_file(display, force=True)
            elif display in self._cache:
                touched[display] = None
        changes: dict[str, tuple[FileResult | None, FileResult | None]] = {}
        for display, result in touched.items():
            before = self._cache.get(display)
            if result is not None:
                self._cache[display] = result
                if before is not None and same_yield(before, result):
                    continue  # re-read, same objects: only the signature is news
            changes[display] = (before, result)
        if not changes:
            return last
        per_file = {d: changed_keys(before, after) for d, (before, after) in changes.items()}
        keys = set().union(*per_file.values())
        old_origins = {k: o for k in keys if (o := self._origins.get(k)) is not None}
        for display, (before, result) in changes.items():
            if result is None:
                self._cache.pop(display, None)
                tree.remove(display)
            elif before is None:
                tree.add(display)
            assembly.replace(display, result, per_file[display], old_origins)
        self._origins = assembly.origins
        self._last = assembly.changeset(self.source, last, frozenset(keys))
        if any(k.kind == _CRD for k in keys):
            return self.load()  # a CRD came, went or changed: see `_reparse_with`
        return self._last

    def rescan(self) -> ChangeSet:
        """The watcher's periodic safety net for missed events: the files whose (mtime,
        size, inode) changed, appeared or vanished since they were read go through
        `update`; a full `load` only when the tree itself is in doubt. A stat per file,
        not a re-assembly of every object (a `load` took 0.8 s at 10 000 routes, on
        the event loop, every 10 s without events), and the previous ChangeSet object
        itself when nothing changed, so the store's hint (`ChangeSet.base`) stays the
        set it applied last."""
        tree, assembly, last = self._tree, self._assembly, self._last
        if tree is None or assembly is None or last is None:
            return self.load()
        found = discover(self.paths)
        if not found.plain or found.problems != assembly.problems:
            return self.load()
        present = set(found.files)
        changed = [
            path
            for path in found.files
            if (cached := self._cache.get(path)) is None
            or _signature(Path(path)) != cached.signature
        ]
        changed.extend(path for path in self._cache if path not in present)
        return self.update(changed) if changed else last

    def _load_file(self, path: str, *, force: bool) -> FileResult:
        cached = self._cache.get(path)
        signature = _signature(Path(path))
        if (
            cached is not None
            and not force
            and signature is not None
            and (signature == cached.signature)
        ):
            return cached
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            return failed_result(
                path,
                f"cannot read: {exc.strerror or exc}",
                cached,
                signature=signature,
                digest=None,
            )
        digest = hashlib.sha256(data).hexdigest()
        if cached is not None and not cached.failed and cached.digest == digest:
            return cached.with_signature(signature)
        if self._cluster_scoped is None:
            self._cluster_scoped = _cluster_scoped_kinds()
        return parse_file(
            path,
            data,
            parse=self._parse,
            previous=cached,
            signature=signature,
            cluster_scoped=self._cluster_scoped,
            digest=digest,
        )


def load_paths(
    paths: Sequence[Path | str],
    *,
    parse: ParseFn | None = None,
    crds: Sequence[Path | str] = (),
) -> ChangeSet:
    """Read everything under `paths` once (what `propylon validate` does)."""
    return FileSource(paths, parse=parse, crds=crds).load()
