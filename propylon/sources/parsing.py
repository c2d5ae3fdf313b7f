"""Parsing one manifest file's bytes into objects and diagnostics, with the last-good
fallback: a file that cannot be parsed keeps the objects it held the last time it could;
an object whose new version is invalid keeps its last valid version from the same file.

Pure (no I/O, no clock; under the purity contract): the caller reads the bytes and
hands over the previous result. Linear in the size of the file, and a YAML file is
parsed per document: a document whose text is unchanged since the previous result is
not parsed again, so an edit in a file of thousands of objects costs one document."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from operator import attrgetter
from typing import Any

from propylon.resources.meta import ObjectKey
from propylon.resources.unknown import unknown_fields
from propylon.sources.documents import DocumentError, load_documents
from propylon.store.diagnostics import Diagnostic, error, warning
from propylon.store.types import Resource

ParseFn = Callable[[Mapping[str, Any]], Resource]
_KEY = attrgetter("key")


@dataclass(frozen=True, slots=True)
class ParsedObject:
    key: ObjectKey
    resource: Resource
    document: int


#: A chunk of YAML text (one or more documents; see `_chunks`) -> what it yielded.
ChunkYields = Mapping[tuple[int, str], "_Chunk"]


@dataclass(frozen=True, slots=True)
class _Chunk:
    """What a chunk yielded when its first document was document `first` of the file."""

    first: int
    objects: tuple[ParsedObject, ...]
    diagnostics: tuple[Diagnostic, ...]
    documents: int

    def at(self, first: int) -> _Chunk:
        """The same yield with its first document at `first` (itself if it is there)."""
        if first == self.first:
            return self
        shift = first - self.first
        return _Chunk(
            first,
            tuple(ParsedObject(o.key, o.resource, o.document + shift) for o in self.objects),
            tuple(
                d if d.document is None else replace(d, document=d.document + shift)
                for d in self.diagnostics
            ),
            self.documents,
        )


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
    #: Per-document results to reuse on the next parse of this file (not compared).
    chunks: ChunkYields = field(default_factory=dict, compare=False, repr=False)
    #: The keys whose objects are not the identical ones of the result whose id() is
    #: `changed_since` (the previous result of this path, which the caller holds), from
    #: the per-document reuse; None: unknown (compare the objects).
    changed: frozenset[ObjectKey] | None = field(default=None, compare=False, repr=False)
    changed_since: int = field(default=0, compare=False, repr=False)
    #: key -> position in `objects` (the last one), and key -> every position for the
    #: keys defined more than once; built on first use (not compared).
    _index: tuple[dict[ObjectKey, int], dict[ObjectKey, list[int]]] | None = field(
        default=None, compare=False, repr=False
    )

    def positions(self, key: ObjectKey) -> list[int]:
        """Where `key` is in `objects`, in order (one dict lookup once indexed; the index
        is built at C level, with a Python step only for keys defined twice)."""
        index = self._index
        if index is None:
            keys = list(map(_KEY, self.objects))
            last = dict(zip(keys, range(len(keys)), strict=True))
            twice: dict[ObjectKey, list[int]] = {}
            if len(last) != len(keys):  # a key defined twice (reported as a duplicate)
                for i, k in enumerate(keys):
                    twice.setdefault(k, []).append(i)
                twice = {k: v for k, v in twice.items() if len(v) > 1}
            index = (last, twice)
            object.__setattr__(self, "_index", index)
        last, twice = index
        if twice and key in twice:
            return twice[key]
        at = last.get(key)
        return [] if at is None else [at]

    def with_signature(self, signature: tuple[int, int, int] | None) -> FileResult:
        """The same yield, read again (same bytes) at a new (mtime, size, inode)."""
        return replace(self, signature=signature)


def same_yield(a: FileResult, b: FileResult) -> bool:
    return a.objects == b.objects and a.diagnostics == b.diagnostics and a.failed == b.failed


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

    def run(self, docs: list[Any], first: int = 0) -> None:
        """`first`: the index in the file of the first of `docs`."""
        for index, doc in enumerate(docs, first):
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
        for path in unknown_fields(resource, doc):
            self.diagnostics.append(
                warning(
                    f'unknown field "{path}" (ignored; with the CRD files, see --crds, it is '
                    "an error, as strict field validation makes it)",
                    file=self.path,
                    document=index,
                    object=label,
                    field=fld(path),
                )
            )

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
            # At the document that defines it now (the file may have moved it).
            if kept.document != index:
                kept = ParsedObject(kept.key, kept.resource, index)
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
        found = self.previous.positions(key)
        return self.previous.objects[found[0]] if found else None


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


# A YAML document starts at a line "---" followed by a space, a tab or the end of the
# line. No scalar may hold such a line (YAML forbids document markers inside scalars), so
# the text splits there into chunks that parse alone exactly as in the whole file.
# Directives ("%YAML", "%TAG") belong to the document after them: such files are parsed
# whole.
_MARKER = "\n---"
_MARKER_END = frozenset({"", " ", "\t", "\r", "\n"})
_FIRST, _MIDDLE, _LAST, _ONLY = range(4)


def _chunks(text: str) -> list[tuple[int, str]]:
    """The text cut before each document start: (where, piece) where the chunk's text
    is `piece`, preceded by "---" unless it is the first, followed by a newline unless
    it is the last (str.split, not a regex: this runs on every edit of a big file)."""
    pieces = text.split(_MARKER)
    merged = [pieces[0]]
    for piece in pieces[1:]:
        if piece[:1] in _MARKER_END:
            merged.append(piece)
        else:  # "---x" is no document start: glue the piece back on
            merged[-1] += _MARKER + piece
    if len(merged) == 1:
        return [(_ONLY, merged[0])]
    out = [(_MIDDLE, piece) for piece in merged]
    out[0] = (_FIRST, merged[0])
    out[-1] = (_LAST, merged[-1])
    return out


def _chunk_text(where: int, piece: str) -> str:
    head = "" if where in (_FIRST, _ONLY) else "---"
    tail = "" if where in (_LAST, _ONLY) else "\n"
    return head + piece + tail


def parse_file(
    path: str,
    data: bytes,
    *,
    parse: ParseFn,
    cluster_scoped: frozenset[str],
    previous: FileResult | None = None,
    signature: tuple[int, int, int] | None = None,
    digest: str | None = None,
) -> FileResult:
    """Parse one file's bytes. `previous` (the last result for this path) supplies the
    objects kept when the file or one of its objects is invalid, and the per-document
    results reused for documents whose text did not change. `digest`: the bytes'
    sha256, if the caller has it."""
    digest = digest or hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return failed_result(
            path,
            f"not UTF-8 text ({exc.reason} at byte {exc.start})",
            previous,
            signature=signature,
            digest=digest,
        )
    last = previous if previous and previous.objects else None
    json_file = path.lower().endswith(".json")
    if json_file or text.startswith("%") or "\n%" in text:
        try:
            docs = load_documents(text, json_file=json_file)
        except DocumentError as exc:
            return _unreadable(path, exc, previous, signature=signature, digest=digest)
        parser = _FileParser(path, parse, cluster_scoped, last)
        parser.run(docs)
        return FileResult(path, signature, digest, tuple(parser.objects), tuple(parser.diagnostics))
    reuse = previous.chunks if previous is not None else {}
    chunks: dict[tuple[int, str], _Chunk] = {}
    objects: list[ParsedObject] = []
    diagnostics: list[Diagnostic] = []
    first = 0  # index in the file of the chunk's first document
    changed: set[ObjectKey] = set()
    for key in _chunks(text):
        hit = chunks.get(key) or reuse.get(key)
        if hit is not None:
            chunk = hit.at(first)
            if chunk is not hit:  # moved: new document numbers
                changed.update(o.key for o in chunk.objects)
        else:
            try:
                docs = load_documents(_chunk_text(*key))
            except DocumentError:
                # Report the error as the whole file's parse does (line numbers, the
                # context of a duplicate key), which is where the chunk cannot tell.
                try:
                    load_documents(text)
                except DocumentError as exc:
                    return _unreadable(path, exc, previous, signature=signature, digest=digest)
                raise  # pragma: no cover - a chunk fails only where the whole file does
            parser = _FileParser(path, parse, cluster_scoped, last)
            parser.run(docs, first)
            chunk = _Chunk(first, tuple(parser.objects), tuple(parser.diagnostics), len(docs))
            changed.update(o.key for o in chunk.objects)
        chunks[key] = chunk
        objects.extend(chunk.objects)
        diagnostics.extend(chunk.diagnostics)
        first += chunk.documents
    for key, was in reuse.items():
        if chunks.get(key) is not was:  # its objects are gone (or moved: counted above)
            changed.update(o.key for o in was.objects)
    return FileResult(
        path,
        signature,
        digest,
        tuple(objects),
        tuple(diagnostics),
        chunks=chunks,
        changed=frozenset(changed) if previous is not None and reuse else None,
        changed_since=id(previous),
    )


def _unreadable(
    path: str,
    exc: DocumentError,
    previous: FileResult | None,
    *,
    signature: tuple[int, int, int] | None,
    digest: str | None,
) -> FileResult:
    return failed_result(
        path,
        str(exc.message),
        previous,
        signature=signature,
        digest=digest,
        line=exc.line,
        column=exc.column,
    )


def failed_result(
    path: str,
    message: str,
    previous: FileResult | None,
    *,
    signature: tuple[int, int, int] | None,
    digest: str | None,
    line: int | None = None,
    column: int | None = None,
) -> FileResult:
    """The file as a whole could not be read or parsed: it keeps what `previous` held."""
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
