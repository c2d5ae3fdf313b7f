"""The file source: manifests in files and directories -> a `ChangeSet` + diagnostics.

Paths may be files (any extension) or directories, read recursively for `.yaml`, `.yml`
and `.json` (entries whose name starts with "." are skipped, which also skips the
`..data` indirection of a mounted ConfigMap while following its symlinked files). A file
holds one or more YAML documents; a document may be a Kubernetes `List` (`kind: List`,
or `kind: <Something>List` with `items`).

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
  and re-parsed only when their bytes changed (sha256).
"""

from __future__ import annotations

import hashlib
import importlib
import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from propylon.resources.meta import ObjectKey
from propylon.sources.documents import DocumentError, load_documents
from propylon.store import ChangeSet, Diagnostic, Origin, Resource, StoredObject, error, warning

ParseFn = Callable[[Mapping[str, Any]], Resource]

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
_FALLBACK_CLUSTER_SCOPED = frozenset(
    {"GatewayClass", "CiliumLoadBalancerIPPool", "CiliumClusterwideNetworkPolicy", "Namespace"}
)


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


@dataclass(frozen=True, slots=True)
class ParsedObject:
    key: ObjectKey
    resource: Resource
    document: int


@dataclass(frozen=True, slots=True)
class FileResult:
    """What one file yielded. `failed`: the file as a whole could not be read, and
    `objects` are the ones it held the last time it could."""

    path: str
    signature: tuple[int, int, int] | None
    digest: str | None
    objects: tuple[ParsedObject, ...] = ()
    diagnostics: tuple[Diagnostic, ...] = ()
    failed: bool = False


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _label(kind: str, namespace: str, name: str) -> str | None:
    if not kind:
        return None
    if not name:
        return kind
    return str(ObjectKey(kind, namespace, name))


def _error_attrs(exc: BaseException) -> tuple[str, str, str, str | None, str] | None:
    """(kind, namespace, name, field, message) of a ResourceError (duck-typed, so that
    test doubles work too), or None."""
    if not all(hasattr(exc, a) for a in ("kind", "namespace", "name", "field")):
        return None
    message = getattr(exc, "message", None) or str(exc)
    fld = getattr(exc, "field", None)
    return (
        str(getattr(exc, "kind", "") or ""),
        str(getattr(exc, "namespace", "") or ""),
        str(getattr(exc, "name", "") or ""),
        str(fld) if fld else None,
        str(message),
    )


def _is_unknown_kind(exc: BaseException) -> bool:
    return any(cls.__name__.endswith("UnknownKindError") for cls in type(exc).__mro__)


@dataclass(slots=True)
class _FileParser:
    path: str
    parse: ParseFn
    cluster_scoped: frozenset[str]
    previous: FileResult | None
    objects: list[ParsedObject] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def run(self, docs: list[Any]) -> None:
        for index, doc in enumerate(docs):
            if doc is None:
                continue
            if not isinstance(doc, Mapping):
                self.diagnostics.append(
                    error(
                        f"a document must be a mapping (an object), not a {_type_name(doc)}",
                        file=self.path,
                        document=index,
                    )
                )
                continue
            kind = doc.get("kind")
            if (
                isinstance(kind, str)
                and (kind == "List" or kind.endswith("List"))
                and ("items" in doc or kind == "List")
            ):
                items = doc.get("items")
                if items is None:
                    continue
                if not isinstance(items, list):
                    self.diagnostics.append(
                        error("must be a list", file=self.path, document=index, field="items")
                    )
                    continue
                for i, item in enumerate(items):
                    self.one(item, index, f"items[{i}]")
            else:
                self.one(doc, index, None)

    def _raw_identity(self, doc: Mapping[str, Any]) -> tuple[str, str, str]:
        kind = doc.get("kind")
        kind = kind if isinstance(kind, str) else ""
        meta = doc.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        name = meta.get("name")
        name = name if isinstance(name, str) else ""
        namespace = meta.get("namespace")
        if not isinstance(namespace, str) or not namespace:
            namespace = "" if kind in self.cluster_scoped else "default"
        return kind, namespace, name

    def one(self, doc: Any, index: int, prefix: str | None) -> None:
        def fld(name: str | None) -> str | None:
            if prefix is None:
                return name
            return f"{prefix}.{name}" if name else prefix

        if not isinstance(doc, Mapping):
            self.diagnostics.append(
                error(
                    f"a list item must be a mapping (an object), not a {_type_name(doc)}",
                    file=self.path,
                    document=index,
                    field=prefix,
                )
            )
            return
        kind, namespace, name = self._raw_identity(doc)
        label = _label(kind, namespace, name)
        missing = False
        for key, ok in (
            ("apiVersion", isinstance(doc.get("apiVersion"), str) and bool(doc.get("apiVersion"))),
            ("kind", bool(kind)),
            ("metadata.name", bool(name)),
        ):
            if not ok:
                missing = True
                self.diagnostics.append(
                    error("required", file=self.path, document=index, object=label, field=fld(key))
                )
        if missing:
            return
        try:
            resource = self.parse(doc)
        except Exception as exc:
            self._parse_failed(exc, doc, index, fld)
            return
        self.objects.append(ParsedObject(resource.key, resource, index))

    def _parse_failed(
        self,
        exc: Exception,
        doc: Mapping[str, Any],
        index: int,
        fld: Callable[[str | None], str | None],
    ) -> None:
        kind, namespace, name = self._raw_identity(doc)
        attrs = _error_attrs(exc)
        if _is_unknown_kind(exc):
            api_version = doc.get("apiVersion")
            text = attrs[4] if attrs else f"unknown kind {api_version}/{kind}"
            self.diagnostics.append(
                warning(
                    f"{text}; ignored",
                    file=self.path,
                    document=index,
                    object=_label(kind, namespace, name),
                    field=fld(attrs[3] if attrs and attrs[3] else "kind"),
                )
            )
            return
        if attrs is not None:
            kind = attrs[0] or kind
            namespace = attrs[1] or namespace
            name = attrs[2] or name
            field_path, message = attrs[3], attrs[4]
        else:
            field_path, message = None, f"{type(exc).__name__}: {exc}"
        key = ObjectKey(kind, namespace, name)
        kept = self._last_good(key)
        if kept is not None:
            self.objects.append(kept)
            message += " (keeping the last valid version of this object)"
        self.diagnostics.append(
            error(
                message,
                file=self.path,
                document=index,
                object=_label(kind, namespace, name),
                field=fld(field_path),
            )
        )

    def _last_good(self, key: ObjectKey) -> ParsedObject | None:
        if self.previous is None:
            return None
        for obj in self.previous.objects:
            if obj.key == key:
                return obj
        return None


def _type_name(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def parse_file(
    path: str,
    data: bytes,
    *,
    parse: ParseFn,
    previous: FileResult | None = None,
    signature: tuple[int, int, int] | None = None,
    cluster_scoped: frozenset[str] | None = None,
) -> FileResult:
    """Parse one file's bytes. `previous` (the last result for this path) supplies the
    objects kept when the file or one of its objects is invalid."""
    digest = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return _failed(
            path,
            f"not UTF-8 text ({exc.reason} at byte {exc.start})",
            previous,
            signature=signature,
            digest=digest,
        )
    try:
        docs = load_documents(text, json_file=path.lower().endswith(".json"))
    except DocumentError as exc:
        return _failed(
            path,
            str(exc.message),
            previous,
            signature=signature,
            digest=digest,
            line=exc.line,
            column=exc.column,
        )
    scoped = cluster_scoped if cluster_scoped is not None else _cluster_scoped_kinds()
    parser = _FileParser(path, parse, scoped, previous if previous and previous.objects else None)
    parser.run(docs)
    return FileResult(path, signature, digest, tuple(parser.objects), tuple(parser.diagnostics))


def _failed(
    path: str,
    message: str,
    previous: FileResult | None,
    *,
    signature: tuple[int, int, int] | None,
    digest: str | None,
    line: int | None = None,
    column: int | None = None,
) -> FileResult:
    kept = previous.objects if previous is not None else ()
    if line is not None:
        message = f"line {line}, column {column}: {message}"
    if kept:
        count = len(kept)
        message += f" (keeping the {count} object{'s' if count != 1 else ''} last read from it)"
    return FileResult(
        path,
        signature,
        digest,
        kept,
        (error(message, file=path, line=line),),
        failed=True,
    )


@dataclass(frozen=True, slots=True)
class WatchPlan:
    recursive: tuple[Path, ...]
    flat: tuple[Path, ...]


class FileSource:
    """Loads the manifests under `paths`, caching per file; `load()` returns the complete
    desired set each time, re-reading only what changed."""

    def __init__(
        self,
        paths: Sequence[Path | str],
        *,
        parse: ParseFn | None = None,
        source: str = "files",
    ) -> None:
        self.paths = tuple(Path(p) for p in paths)
        self.source = source
        self._parse = parse or default_parse
        self._cache: dict[str, FileResult] = {}
        self._origins: dict[ObjectKey, Origin] = {}
        self._cluster_scoped: frozenset[str] | None = None
        # What `update` patches (all set by `load`): see `_Tree` and `_Assembly`.
        self._tree: _Tree | None = None
        self._assembly: _Assembly | None = None
        self._last: ChangeSet | None = None

    # -- discovery -----------------------------------------------------------------

    def discover(self) -> tuple[list[str], list[Diagnostic]]:
        """Manifest files under the paths (sorted, each once) and problems with paths."""
        files, problems, _ = self._discover()
        return files, problems

    def _discover(self) -> tuple[list[str], list[Diagnostic], _Tree | None]:
        """`discover`, plus a `_Tree` when every path exists and no symlink was met below
        a directory path (then `update` can map watch events to files on its own)."""
        found: dict[str, str] = {}  # real path -> display path
        problems: list[Diagnostic] = []
        plain = True
        for root in self.paths:
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
        files = sorted(found.values())
        tree = _Tree(self.paths, files, found) if plain and not problems else None
        return files, problems, tree

    def is_relevant(self, changed_path: str | Path) -> bool:
        """Could a change at this (absolute or relative) path matter to this source?"""
        target = os.path.abspath(changed_path)
        for root in self.paths:
            base = os.path.abspath(root)
            if target == base:
                return True
            if target.startswith(base.rstrip(os.sep) + os.sep):
                rel = os.path.relpath(target, base)
                return not any(part.startswith(".") for part in Path(rel).parts)
        return False

    def watch_plan(self) -> WatchPlan:
        """What to watch: each directory path recursively; for a file path, its parent
        directory but not recursively (editors save by renaming a new file over the old
        one, which a watch on the file itself would lose); for a missing path, its
        nearest existing ancestor, not recursively (the periodic rescan and a new plan
        take over once it appears)."""
        recursive: list[str] = []
        flat: list[str] = []
        for path in self.paths:
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
        files, problems, tree = self._discover()
        results: dict[str, FileResult] = {}
        for path in files:
            results[path] = self._load_file(path, force=os.path.abspath(path) in forced)
        self._cache = results
        previous_origins = self._origins if known is None else known
        assembly = _Assembly(problems)
        assembly.full(files, results, previous_origins)
        self._origins = assembly.origins
        self._tree, self._assembly = tree, assembly
        self._last = assembly.changeset(self.source, None, frozenset())
        return self._last

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
            if verdict is _RESCAN:
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
                if before is not None and _same_yield(before, result):
                    continue  # re-read, same objects: only the signature is news
            changes[display] = (before, result)
        if not changes:
            return last
        keys: set[ObjectKey] = set()
        for before, result in changes.values():
            for r in (before, result):
                if r is not None:
                    keys.update(obj.key for obj in r.objects)
        old_origins = {k: o for k in keys if (o := self._origins.get(k)) is not None}
        for display, (before, result) in changes.items():
            if result is None:
                self._cache.pop(display, None)
                tree.remove(display)
            elif before is None:
                tree.add(display)
            assembly.replace(display, before, result, old_origins)
        self._origins = assembly.origins
        self._last = assembly.changeset(self.source, last, frozenset(keys))
        return self._last

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
            return _failed(
                path,
                f"cannot read: {exc.strerror or exc}",
                cached,
                signature=signature,
                digest=None,
            )
        if (
            cached is not None
            and not cached.failed
            and cached.digest == hashlib.sha256(data).hexdigest()
        ):
            return FileResult(
                path, signature, cached.digest, cached.objects, cached.diagnostics, cached.failed
            )
        return parse_file(
            path,
            data,
            parse=self._parse,
            previous=cached,
            signature=signature,
            cluster_scoped=self._cluster_scoped,
        )


_RESCAN = ("", False)  # `_Tree.classify`: only a full `load` can tell


class _Tree:
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
        name, gone without having been read); `_RESCAN` when in doubt."""
        display = self.displays.get(path)
        try:
            st = os.lstat(path)
        except OSError:
            st = None
        if display is not None:
            if st is None:
                return (display, False) if path not in self.bases else _RESCAN
            return (display, True) if stat.S_ISREG(st.st_mode) else _RESCAN
        for base, given, is_dir in self.roots:
            if path == base:
                return _RESCAN  # a path given on the command line appeared or changed type
            if not is_dir or not path.startswith(base.rstrip(os.sep) + os.sep):
                continue
            rel = os.path.relpath(path, base)
            if any(part.startswith(".") for part in Path(rel).parts):
                return None  # skipped by discovery (a plain tree has no symlinks to follow)
            if st is None:
                return None  # created and gone again, never read
            if not stat.S_ISREG(st.st_mode):
                return _RESCAN  # a directory moved in, a symlink: discover again
            if not path.lower().endswith(MANIFEST_SUFFIXES):
                return None
            if os.path.realpath(path) in self.reals:
                return _RESCAN  # a second name for a file already read
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


class _Assembly:
    """The complete desired set built from per-file results (what `load` returns), kept
    so that `update` can patch it for a few files: the objects chosen, every definition
    of each object (to settle duplicates), and the diagnostics by where they come from.
    The result is the same as assembling from scratch (tests/sources check it)."""

    def __init__(self, problems: list[Diagnostic]) -> None:
        self.problems = problems  # about the paths themselves
        self.results: dict[str, FileResult] = {}
        self.candidates: dict[ObjectKey, list[Origin]] = {}
        self.chosen: dict[ObjectKey, StoredObject] = {}
        self.origins: dict[ObjectKey, Origin] = {}
        self.duplicates: dict[ObjectKey, list[Diagnostic]] = {}
        self.noisy: set[str] = set()  # files with diagnostics of their own

    def full(
        self,
        files: list[str],
        results: Mapping[str, FileResult],
        previous_origins: Mapping[ObjectKey, Origin],
    ) -> None:
        for path in files:
            result = results[path]
            self.results[path] = result
            if result.diagnostics:
                self.noisy.add(path)
            for obj in result.objects:
                self.candidates.setdefault(obj.key, []).append(Origin(path, obj.document))
        for key in self.candidates:
            self._choose(key, previous_origins.get(key))

    def replace(
        self,
        path: str,
        before: FileResult | None,
        after: FileResult | None,
        previous_origins: Mapping[ObjectKey, Origin],
    ) -> None:
        """Swap one file's result, and choose again among the definitions of its keys."""
        keys = {obj.key for obj in before.objects} if before is not None else set()
        if after is None:
            self.results.pop(path, None)
        else:
            self.results[path] = after
            keys.update(obj.key for obj in after.objects)
        if after is not None and after.diagnostics:
            self.noisy.add(path)
        else:
            self.noisy.discard(path)
        for key in sorted(keys):
            kept = [o for o in self.candidates.get(key, ()) if o.file != path]
            if after is not None:
                mine = [Origin(path, obj.document) for obj in after.objects if obj.key == key]
                at = next((i for i, o in enumerate(kept) if o.file > path), len(kept))
                kept[at:at] = mine
            if kept:
                self.candidates[key] = kept
                self._choose(key, previous_origins.get(key))
            else:
                self.candidates.pop(key, None)
                self.chosen.pop(key, None)
                self.origins.pop(key, None)
                self.duplicates.pop(key, None)

    def _choose(self, key: ObjectKey, before: Origin | None) -> None:
        origins = self.candidates[key]
        winner = _pick(origins, before)
        resource = None
        for obj in self.results[winner.file].objects:  # the last definition at the origin
            if obj.key == key and obj.document == winner.document:
                resource = obj.resource
        assert resource is not None
        current = self.chosen.get(key)
        if current is None or current.resource is not resource or current.origin != winner:
            self.chosen[key] = StoredObject(resource, winner)
        self.origins[key] = winner
        dups = [
            error(
                f"duplicate object: already defined at {winner}; this definition is ignored",
                file=other.file,
                document=other.document,
                object=str(key),
            )
            for other in origins
            if other != winner
        ]
        if dups:
            self.duplicates[key] = dups
        else:
            self.duplicates.pop(key, None)

    def _first_seen(self, key: ObjectKey) -> tuple[str, int]:
        """Where `load` meets this key first (the order its duplicate reports come in)."""
        first = self.candidates[key][0]
        for i, obj in enumerate(self.results[first.file].objects):
            if obj.key == key:
                return first.file, i
        return first.file, 0  # pragma: no cover - a candidate always has its object

    def diagnostics(self) -> tuple[Diagnostic, ...]:
        out = list(self.problems)
        for path in sorted(self.noisy):
            out.extend(self.results[path].diagnostics)
        for key in sorted(self.duplicates, key=self._first_seen):
            out.extend(self.duplicates[key])
        out.sort(key=_position)
        return tuple(out)

    def changeset(
        self, source: str, base: ChangeSet | None, touched: frozenset[ObjectKey]
    ) -> ChangeSet:
        """The current set; with `base`, marked as `base` changed at `touched` only."""
        if base is None:
            return ChangeSet(dict(self.chosen), self.diagnostics(), source)
        return ChangeSet(
            dict(self.chosen), self.diagnostics(), source, base=base.token, touched=touched
        )


def _same_yield(a: FileResult, b: FileResult) -> bool:
    return a.objects == b.objects and a.diagnostics == b.diagnostics and a.failed == b.failed


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


def _position(d: Diagnostic) -> tuple[str, int, int]:
    """File, document, line: a stable sort keeps the order within one document."""
    return (d.file or "", -1 if d.document is None else d.document, d.line or -1)


def _pick(origins: list[Origin], before: Origin | None) -> Origin:
    if before is not None:
        if before in origins:
            return before
        for origin in origins:
            if origin.file == before.file:
                return origin
    return origins[0]


def load_paths(paths: Sequence[Path | str], *, parse: ParseFn | None = None) -> ChangeSet:
    """Read everything under `paths` once (what `propylon validate` does)."""
    return FileSource(paths, parse=parse).load()
