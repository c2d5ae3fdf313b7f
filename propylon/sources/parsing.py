"""Parsing one manifest file's bytes into objects and diagnostics, with the last-good
fallback: a file that cannot be parsed keeps the objects it held the last time it could;
an object whose new version is invalid keeps its last valid version from the same file.

Pure (no I/O, no clock; under the purity contract): the caller reads the bytes and
hands over the previous result. Linear in the size of the file, and a YAML file is
parsed per document: a document whose text is unchanged since the previous result is
not parsed again, so an edit in a file of thousands of objects costs one document."""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from itertools import accumulate
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


#: A chunk of YAML text (one or more documents; see `_key`) -> what it yielded.
ChunkYields = Mapping[bytes, "_Chunk"]


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
class _Layout:
    """A YAML file as chunks in order: `lengths[i]` is the length of chunk i's text
    (the file is the chunks' texts joined by `_MARKER`), `chunks[i]` what it yielded, at
    its place. `text`: the file, kept for big files only, which an edit then parses in
    proportion to the edit (`_parse_edit`); a small file's edit takes the full pass,
    whose cost is that of splitting the file and hashing its chunks. Keeping every
    file's text cost its size: 5 MiB at 5000 routes in files of 100."""

    text: str | None
    lengths: list[int]
    chunks: list[_Chunk]


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
    #: The chunks in file order (see `_Layout`), for an edit parsed in proportion to it.
    layout: _Layout | None = field(default=None, compare=False, repr=False)
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


def _pieces(split: list[str]) -> list[str]:
    """The text's pieces between document starts, from `text.split(_MARKER)`: a piece
    after "---x" (no document start) is glued back on to the one before (str.split,
    not a regex: this runs on every edit of a big file)."""
    merged = [split[0]]
    for piece in split[1:]:
        if piece[:1] in _MARKER_END:
            merged.append(piece)
        else:
            merged[-1] += _MARKER + piece
    return merged


def _where(index: int, count: int) -> int:
    """Chunk `index` of `count`: its text is `_chunk_text(where, piece)`, preceded by
    "---" unless it is the first, followed by a newline unless the last."""
    if count == 1:
        return _ONLY
    return _FIRST if index == 0 else _LAST if index == count - 1 else _MIDDLE


def _key(where: int, piece: str) -> bytes:
    """The key of a chunk's yield in `FileResult.chunks`: where it is (one byte) and a
    digest of its piece (128 bits of BLAKE2b: two different texts never meet in
    practice), not the text itself, which would keep every file's text alive. One bytes
    object, not a tuple of two: 15 000 keys at 5000 routes."""
    digest = hashlib.blake2b(piece.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    return _WHERE_BYTE[where] + digest


_WHERE_BYTE = tuple(bytes([where]) for where in (_FIRST, _MIDDLE, _LAST, _ONLY))


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

    def whole() -> FileResult:
        try:
            docs = load_documents(text, json_file=json_file)
        except DocumentError as exc:
            return _unreadable(path, exc, previous, signature=signature, digest=digest)
        parser = _FileParser(path, parse, cluster_scoped, last)
        parser.run(docs)
        return FileResult(path, signature, digest, tuple(parser.objects), tuple(parser.diagnostics))

    if json_file or text.startswith("%") or "\n%" in text:
        return whole()
    chunker = _ChunkParser(path, parse, cluster_scoped, last)
    reuse = previous.chunks if previous is not None else {}
    # The edit path keeps the chunks around the edit as they were; a chunk's yield is a
    # function of its text only when nothing in it failed (a failed object falls back on
    # the previous result's last-good version, which the full pass looks up by text
    # again), so a file with diagnostics takes the full pass.
    # Two chunks of the same text share one entry in `chunks`: then the full pass too,
    # and it does not say what changed (the caller compares the objects).
    layout = (
        previous.layout
        if previous is not None
        and previous.layout is not None
        and previous.layout.text is not None
        and not previous.diagnostics
        and _distinct(previous)
        else None
    )
    try:
        if previous is not None and layout is not None:
            return _parse_edit(chunker, text, layout, previous, signature, digest)
        pieces = _pieces(text.split(_MARKER))
        chunks = chunker.chunks(pieces, 0, len(pieces), 0, reuse)
    except DocumentError:
        # Read the whole file instead: it reports the error as a chunk cannot (line
        # numbers in the file, the context of a duplicate key), or, for the rare file
        # that reads whole but not in chunks (an end marker "..." first), its objects.
        return whole()
    changed = chunker.changed
    _distinct_now = len(chunker.cache) == len(chunks)
    for key, was in reuse.items():
        if chunker.cache.get(key) is not was:  # its objects are gone (or moved: counted)
            changed.update(o.key for o in was.objects)
    return FileResult(
        path,
        signature,
        digest,
        tuple(o for c in chunks for o in c.objects),
        tuple(d for c in chunks for d in c.diagnostics),
        chunks=chunker.cache,
        changed=frozenset(changed) if _distinct(previous) and _distinct_now else None,
        changed_since=id(previous),
        layout=_Layout(_kept(text), list(map(len, pieces)), chunks),
    )


@dataclass(slots=True)
class _ChunkParser:
    """Parses chunks, reusing what a chunk of the same text yielded before."""

    path: str
    parse: ParseFn
    cluster_scoped: frozenset[str]
    last: FileResult | None
    cache: dict[bytes, _Chunk] = field(default_factory=dict)
    changed: set[ObjectKey] = field(default_factory=set)

    def chunks(
        self, pieces: list[str], index: int, count: int, first: int, reuse: ChunkYields
    ) -> list[_Chunk]:
        """The chunks of `pieces` in order: chunk `index` of `count` onwards, the first
        one's first document at `first`."""
        out = []
        for at, piece in enumerate(pieces, index):
            where = _where(at, count)
            key = _key(where, piece)
            hit = self.cache.get(key) or reuse.get(key)
            if hit is not None:
                chunk = hit.at(first)
                if chunk is not hit:  # moved: new document numbers
                    self.changed.update(o.key for o in chunk.objects)
            else:
                docs = load_documents(_chunk_text(where, piece))
                parser = _FileParser(self.path, self.parse, self.cluster_scoped, self.last)
                parser.run(docs, first)
                chunk = _Chunk(first, tuple(parser.objects), tuple(parser.diagnostics), len(docs))
                self.changed.update(o.key for o in chunk.objects)
            self.cache[key] = chunk
            out.append(chunk)
            first += chunk.documents
        return out


def _parse_edit(
    parser: _ChunkParser,
    text: str,
    layout: _Layout,
    previous: FileResult,
    signature: tuple[int, int, int] | None,
    digest: str,
) -> FileResult:
    """`parse_file` of an edited file in proportion to the edit: the text before the
    first and after the last changed character is compared at C level, and only the
    chunks around the change are split and looked up again; the others are the
    previous ones (shifted only if the number of documents before them changed)."""
    lengths, chunks = layout.lengths, layout.chunks
    old = layout.text
    assert old is not None  # parse_file takes this path only for a kept text
    prefix = _common_prefix(old, text)
    suffix = _common_suffix(old, text, min(len(old), len(text)) - prefix)
    # ends[k]: where chunk k+1 starts in `old` (its piece and the marker after it).
    ends = list(accumulate(map(_PLUS_MARKER, lengths)))
    count = len(lengths)
    # From the chunk before the one holding the first change (so that the marker
    # before the region, and the character after it, are unchanged) to the chunk after
    # the one holding the first unchanged character of the end (likewise after it).
    start = max(0, bisect_right(ends, prefix) - 1)
    stop = min(count - 1, bisect_right(ends, len(old) - suffix) + 1)
    at = ends[start - 1] if start else 0
    region_end = ends[stop] - len(_MARKER) if stop < count - 1 else len(old)
    region = _pieces(text[at : region_end + len(text) - len(old)].split(_MARKER))
    total = count - (stop - start + 1) + len(region)
    reuse = dict(previous.chunks)
    new = parser.chunks(region, start, total, chunks[start].first, reuse)
    after = chunks[stop + 1 :]
    first = new[-1].first + new[-1].documents
    shifted = bool(after) and after[0].first != first
    if shifted:  # documents added or removed before them: renumbered
        moved = []
        for chunk in after:
            moved.append(chunk.at(first))
            parser.changed.update(o.key for o in chunk.objects)
            first += chunk.documents
        after = moved
    replaced = chunks[start : stop + 1]
    kept = set(map(id, new))
    for chunk in replaced:
        if id(chunk) not in kept:
            parser.changed.update(o.key for o in chunk.objects)
    for i in range(start, stop + 1):
        begin = ends[i - 1] if i else 0
        key = _key(_where(i, count), old[begin : begin + lengths[i]])
        if reuse.get(key) is chunks[i]:
            del reuse[key]
    reuse.update(parser.cache)
    # Objects and diagnostics: the previous tuples' slices around the region (C-level
    # copies), unless the chunks after it were renumbered.
    head = sum(map(len, map(_OBJECTS, chunks[:start])))
    tail = head + sum(map(len, map(_OBJECTS, replaced)))
    head_d = sum(map(len, map(_DIAGNOSTICS, chunks[:start])))
    tail_d = head_d + sum(map(len, map(_DIAGNOSTICS, replaced)))
    later = after if shifted else []
    objects = (
        previous.objects[:head]
        + tuple(o for c in [*new, *later] for o in c.objects)
        + (() if shifted else previous.objects[tail:])
    )
    diagnostics = (
        previous.diagnostics[:head_d]
        + tuple(d for c in [*new, *later] for d in c.diagnostics)
        + (() if shifted else previous.diagnostics[tail_d:])
    )
    return FileResult(
        parser.path,
        signature,
        digest,
        objects,
        diagnostics,
        chunks=reuse,
        changed=frozenset(parser.changed),
        changed_since=id(previous),
        layout=_Layout(
            _kept(text),
            lengths[:start] + list(map(len, region)) + lengths[stop + 1 :],
            chunks[:start] + new + after,
        ),
        _index=None if shifted else _patched_index(previous, head, replaced, new),
    )


def _patched_index(
    previous: FileResult, head: int, replaced: list[_Chunk], new: list[_Chunk]
) -> tuple[dict[ObjectKey, int], dict[ObjectKey, list[int]]] | None:
    """The previous result's key index with the region's objects swapped, when that is
    exact without a walk: the same number of objects (so the others keep their
    positions), and no key defined twice; else None (built on first use)."""
    index = previous._index
    if index is None or index[1]:
        return None
    gone = [o.key for c in replaced for o in c.objects]
    come = [o.key for c in new for o in c.objects]
    if len(gone) != len(come):
        return None
    last = dict(index[0])  # a C-level copy: the keys' hashes are kept
    for key in gone:
        del last[key]
    for at, key in enumerate(come, head):
        if key in last:
            return None  # now defined twice
        last[key] = at
    return last, {}


def _distinct(result: FileResult | None) -> bool:
    """Whether `result` came from chunks of distinct texts (each its own entry in
    `chunks`: the full pass can then tell which disappeared)."""
    return (
        result is not None
        and result.layout is not None
        and len(result.chunks) == len(result.layout.chunks)
    )


_KEEP_TEXT = 1 << 20  # characters


def _kept(text: str) -> str | None:
    return text if len(text) > _KEEP_TEXT else None


_OBJECTS = attrgetter("objects")
_DIAGNOSTICS = attrgetter("diagnostics")
_PLUS_MARKER = len(_MARKER).__add__
_BLOCK = 1 << 16


def _common_prefix(a: str, b: str) -> int:
    """How many characters `a` and `b` start with alike (slices compared in C: blocks,
    then halving within the first block that differs)."""
    n = min(len(a), len(b))
    lo = 0
    while lo < n:
        hi = min(lo + _BLOCK, n)
        if a[lo:hi] != b[lo:hi]:
            break
        lo = hi
    else:
        return n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: str, b: str, limit: int) -> int:
    """How many characters (at most `limit`) `a` and `b` end with alike."""
    la, lb = len(a), len(b)
    lo = 0
    while lo < limit:
        hi = min(lo + _BLOCK, limit)
        if a[la - hi : la - lo] != b[lb - hi : lb - lo]:
            break
        lo = hi
    else:
        return limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[la - mid : la - lo] == b[lb - mid : lb - lo]:
            lo = mid
        else:
            hi = mid - 1
    return lo


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
