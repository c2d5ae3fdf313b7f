"""Duplicate resolution: the complete desired set assembled from per-file results, kept
so that a change to a few files is patched in rather than assembled again."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from immutables import Map

from propylon.persistent import PersistentMap
from propylon.resources.meta import ObjectKey
from propylon.sources.parsing import FileResult
from propylon.store import ChangeSet, Diagnostic, Origin, StoredObject, error


class _Chosen(Protocol):
    """What `_choose` writes to: a dict (a full assembly) or a `Map` mutation (a patch)."""

    def get(self, key: ObjectKey, /) -> StoredObject | None: ...
    def __setitem__(self, key: ObjectKey, value: StoredObject, /) -> None: ...


class Assembly:
    """The complete desired set built from per-file results (what `load` returns), kept
    so that `update` can patch it for a few files: the objects chosen, every definition
    of each object (to settle duplicates), and the diagnostics by where they come from.
    The result is the same as assembling from scratch (tests/sources check it).

    The objects chosen are a persistent map, handed to each ChangeSet as it is: a patch
    costs what it changed, not a copy of every object (~3 ms at 50 000 routes)."""

    def __init__(self, problems: list[Diagnostic]) -> None:
        self.problems = problems  # about the paths themselves
        self.results: dict[str, FileResult] = {}
        # key -> every definition of it: the Origin itself while there is one (a list
        # per object was 1.1 MiB at 5000 routes), a tuple of two or more
        self.candidates: dict[ObjectKey, Origin | tuple[Origin, ...]] = {}
        self.chosen: Map[ObjectKey, StoredObject] = Map()
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
            candidates = self.candidates
            for obj in result.objects:
                origin = Origin(path, obj.document)
                have = candidates.get(obj.key)
                candidates[obj.key] = origin if have is None else (*_origins(have), origin)
        chosen: dict[ObjectKey, StoredObject] = {}
        for key in self.candidates:
            self._choose(key, previous_origins.get(key), chosen)
        self.chosen = Map(chosen)

    def replace(
        self,
        path: str,
        after: FileResult | None,
        keys: set[ObjectKey],
        previous_origins: Mapping[ObjectKey, Origin],
    ) -> None:
        """Swap one file's result, and choose again among the definitions of `keys`: the
        keys whose objects changed (`changed_keys`; an unchanged document yields the
        identical objects, see `parsing.parse_file`), so an edit costs what it changed."""
        if after is None:
            self.results.pop(path, None)
        else:
            self.results[path] = after
        if after is not None and after.diagnostics:
            self.noisy.add(path)
        else:
            self.noisy.discard(path)
        with self.chosen.mutate() as chosen:
            for key in sorted(keys):
                kept = [o for o in _origins(self.candidates.get(key, ())) if o.file != path]
                if after is not None:
                    mine = [Origin(path, after.objects[i].document) for i in after.positions(key)]
                    at = next((i for i, o in enumerate(kept) if o.file > path), len(kept))
                    kept[at:at] = mine
                if kept:
                    self.candidates[key] = kept[0] if len(kept) == 1 else tuple(kept)
                    self._choose(key, previous_origins.get(key), chosen)
                else:
                    self.candidates.pop(key, None)
                    chosen.pop(key, None)
                    self.origins.pop(key, None)
                    self.duplicates.pop(key, None)
            self.chosen = chosen.finish()

    def _choose(self, key: ObjectKey, before: Origin | None, chosen: _Chosen) -> None:
        origins = _origins(self.candidates[key])
        winner = _pick(origins, before)
        resource = None
        result = self.results[winner.file]
        for i in result.positions(key):  # the last definition at the origin
            obj = result.objects[i]
            if obj.document == winner.document:
                resource = obj.resource
        assert resource is not None
        current = chosen.get(key)
        if current is None or current.resource is not resource or current.origin != winner:
            chosen[key] = StoredObject(resource, winner)
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
        first = _origins(self.candidates[key])[0]
        return first.file, self.results[first.file].positions(key)[0]

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
        objects = PersistentMap.of(self.chosen)
        if base is None:
            return ChangeSet(objects, self.diagnostics(), source)
        return ChangeSet(objects, self.diagnostics(), source, base=base.token, touched=touched)


def _position(d: Diagnostic) -> tuple[str, int, int]:
    """File, document, line: a stable sort keeps the order within one document."""
    return (d.file or "", -1 if d.document is None else d.document, d.line or -1)


def _pick(origins: Sequence[Origin], before: Origin | None) -> Origin:
    if before is not None:
        if before in origins:
            return before
        for origin in origins:
            if origin.file == before.file:
                return origin
    return origins[0]


def changed_keys(before: FileResult | None, after: FileResult | None) -> set[ObjectKey]:
    """The keys of the objects in one result and not the other, by identity (set
    operations at C level, then a step per changed object only)."""
    if before is None or after is None:
        return {obj.key for r in (before, after) if r is not None for obj in r.objects}
    if before.objects is after.objects:
        return set()
    if after.changed is not None and after.changed_since == id(before):
        return set(after.changed)  # from the per-document reuse: no walk over the objects
    was = set(map(id, before.objects))
    now = set(map(id, after.objects))
    gone, new = was - now, now - was
    keys = {obj.key for obj in before.objects if id(obj) in gone} if gone else set()
    if new:
        keys.update(obj.key for obj in after.objects if id(obj) in new)
    return keys


def _origins(found: Origin | tuple[Origin, ...]) -> tuple[Origin, ...]:
    return (found,) if isinstance(found, Origin) else found
