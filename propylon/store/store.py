"""The object store: objects by (kind, namespace, name), with generation tracking.

Like the Kubernetes API server, the store owns three metadata fields and overrides
whatever a file says for them:

- `metadata.generation`: 1 at creation, +1 each time the object's *spec* changes. For
  kinds without a `spec` (Secret, ConfigMap, EndpointSlice, ...) every change of content
  other than metadata and status counts (`data`, `endpoints`, ...). Label and annotation
  changes never bump it (they do count as an update, see `Snapshot.updated`).
- `metadata.creationTimestamp`: from the injected clock (an RFC 3339 string: the core
  reads no clock and formats no time; the shell passes `propylon.clock.timestamp_now`).
- `metadata.uid`: from the injected factory (the shell passes `propylon.clock.new_uid`).

A ChangeSet with `server_metadata` (the Kubernetes source) is taken as the API server
gave it: its uid, generation and creationTimestamp are real, never emulated.

Generations survive restarts through `export_records()` / `import_records()`: an object
whose spec hash matches its record keeps generation, timestamp and uid; a changed spec
gets the record's generation + 1.

The store is pure (no I/O, no clock): a clock and a uid factory are required.

Each `Snapshot` is persistent (hash array mapped tries, `immutables.Map`): an apply that
changes k objects costs O(k log n), and old snapshots stay valid and share everything
unchanged with new ones. (Copying three dicts of every object per apply, and freeing the
previous snapshot's, was ~20 ms per change at 50 000 routes.)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from immutables import Map

from propylon.persistent import PersistentMap
from propylon.resources.meta import ObjectKey
from propylon.store.changeset import ChangeSet, StoredObject
from propylon.store.diagnostics import Diagnostic, warning
from propylon.store.types import Resource

_STORE_OWNED_METADATA = ("generation", "creationTimestamp", "uid", "resourceVersion")
_NOT_CONTENT = ("apiVersion", "kind", "metadata", "status")
# Kinds whose status is what the build reads: a Node's addresses and readiness (its parsed
# status holds only those, so a heartbeat changes nothing).
_STATUS_IS_CONTENT = frozenset({"Node"})


def key_to_str(key: ObjectKey) -> str:
    """`Kind/namespace/name` (namespace empty for cluster-scoped objects)."""
    return f"{key.kind}/{key.namespace}/{key.name}"


def key_from_str(text: str) -> ObjectKey:
    kind, namespace, name = text.split("/", 2)
    return ObjectKey(kind, namespace, name)


def _encoded(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def _digest(value: Any) -> str:
    return hashlib.sha256(_encoded(value)).hexdigest()


def _dump(resource: Resource) -> dict[str, Any]:
    return resource.model_dump(mode="json", by_alias=True)


def hashes(resource: Resource) -> tuple[str, bytes]:
    """(spec hash, content hash) from one dump. The spec hash is what drives
    `metadata.generation`: `spec`, or for kinds without one everything but apiVersion,
    kind, metadata and status. The content hash covers everything a user controls (all
    but status, except a Node's, and the metadata the store owns), the spec through its
    digest, so the spec is encoded once."""
    doc = _dump(resource)
    if "spec" in doc:
        s_hash = _digest(doc.pop("spec"))
    else:
        s_hash = _digest({k: v for k, v in doc.items() if k not in _NOT_CONTENT})
    if doc.get("kind") not in _STATUS_IS_CONTENT:
        doc.pop("status", None)
    meta = doc.get("metadata")
    if isinstance(meta, dict):
        doc["metadata"] = {k: v for k, v in meta.items() if k not in _STORE_OWNED_METADATA}
    doc["spec"] = s_hash
    # Compared in memory only, never saved: 16 raw bytes (49-byte objects, not the
    # 113 of a hex string; 15 000 of them at 5000 routes).
    return s_hash, hashlib.blake2b(_encoded(doc), digest_size=16).digest()


_RECORD_FIELDS = {
    "generation": "generation",
    "spec_hash": "spec_hash",
    "creationTimestamp": "creation_timestamp",
    "uid": "uid",
    "source": "source",
}


@dataclass(frozen=True, slots=True)
class ObjectRecord(Mapping[str, Any]):
    """What the store remembers about an object across restarts. Also its JSON form,
    read-only (`to_json`'s keys): `export_records` hands out the records themselves,
    not a dict per object (15 000 dicts at 5000 routes, kept for the state writer's
    cache, which keys on the very object)."""

    generation: int
    spec_hash: str
    creation_timestamp: str
    uid: str
    source: str = "files"

    def __getitem__(self, key: str) -> Any:
        return getattr(self, _RECORD_FIELDS[key])

    def __iter__(self) -> Iterator[str]:
        return iter(_RECORD_FIELDS)

    def __len__(self) -> int:
        return len(_RECORD_FIELDS)

    def to_json(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "spec_hash": self.spec_hash,
            "creationTimestamp": self.creation_timestamp,
            "uid": self.uid,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ObjectRecord:
        return cls(
            generation=int(data["generation"]),
            spec_hash=str(data["spec_hash"]),
            creation_timestamp=str(data["creationTimestamp"]),
            uid=str(data["uid"]),
            source=str(data.get("source", "files")),
        )


class Snapshot(Mapping[ObjectKey, StoredObject]):
    """An immutable view of every object in the store, plus what the `apply` that
    produced it changed. `updated` holds objects whose content changed (spec, labels,
    annotations, data...); a move to another file alone is not an update."""

    __slots__ = (
        "_objects",
        "_resources",
        "_sources",
        "added",
        "deleted",
        "diagnostics",
        "updated",
    )

    def __init__(
        self,
        objects: Mapping[ObjectKey, StoredObject],
        *,
        added: frozenset[ObjectKey] = frozenset(),
        updated: frozenset[ObjectKey] = frozenset(),
        deleted: frozenset[ObjectKey] = frozenset(),
        diagnostics: tuple[Diagnostic, ...] = (),
        sources: Mapping[ObjectKey, str] | None = None,
    ) -> None:
        self._objects: Map[ObjectKey, StoredObject] = Map(objects)
        self._sources: Map[ObjectKey, str] = Map(sources or {})
        self._resources: Map[ObjectKey, Resource] | None = None
        self.added = added
        self.updated = updated
        self.deleted = deleted
        self.diagnostics = diagnostics

    def __getitem__(self, key: ObjectKey) -> StoredObject:
        return self._objects[key]

    def __iter__(self) -> Iterator[ObjectKey]:
        return iter(self._objects)

    def __len__(self) -> int:
        return len(self._objects)

    def __repr__(self) -> str:
        return (
            f"Snapshot({len(self)} objects, added={len(self.added)}, "
            f"updated={len(self.updated)}, deleted={len(self.deleted)})"
        )

    @classmethod
    def _of(
        cls,
        objects: Map[ObjectKey, StoredObject],
        sources: Map[ObjectKey, str],
        resources: Map[ObjectKey, Resource],
        **changes: Any,
    ) -> Snapshot:
        """A snapshot of the store's persistent maps (shared, never copied)."""
        snap = cls.__new__(cls)
        snap._objects, snap._sources, snap._resources = objects, sources, resources
        snap.added = changes.get("added", frozenset())
        snap.updated = changes.get("updated", frozenset())
        snap.deleted = changes.get("deleted", frozenset())
        snap.diagnostics = changes.get("diagnostics", ())
        return snap

    @property
    def changed(self) -> frozenset[ObjectKey]:
        return self.added | self.updated | self.deleted

    def source_of(self, key: ObjectKey) -> str | None:
        """The `ChangeSet.source` an object came from."""
        return self._sources.get(key)

    def resources(self, *, source: str | None = None) -> Mapping[ObjectKey, Resource]:
        """The objects as `gatewayapi.Inputs.objects` wants them (of one source only, when
        `source` is given). Immutable: no copy of thousands of entries per change."""
        if source is None and self._resources is not None:
            return PersistentMap.of(self._resources)
        return {
            key: stored.resource
            for key, stored in self._objects.items()
            if source is None or self._sources.get(key) == source
        }


# The hashes of an object stored new (no record of it): computed when first needed (it
# changes, or the records are exported for the state directory), not on start-up for
# thousands of objects at once. Real hashes are hex digests, never empty.
_UNHASHED = ""
_NO_CONTENT = b""


@dataclass(slots=True)
class _Entry:
    stored: StoredObject
    record: ObjectRecord
    content: bytes  # the content hash, or _NO_CONTENT
    # The resource as the source gave it (before stamping): when the source hands the
    # same object again (an unchanged file), nothing needs hashing.
    incoming: Resource | None = None


class Store:
    def __init__(
        self,
        *,
        now: Callable[[], str],
        new_uid: Callable[[], str],
        records: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self._now = now
        self._new_uid = new_uid
        self._entries: dict[ObjectKey, _Entry] = {}
        # Persistent mirrors of `_entries` that snapshots share; during an apply, its
        # writes (None: a deletion) wait in `_writes` and go in at the end, in bulk.
        self._stored: Map[ObjectKey, StoredObject] = Map()
        self._sources: Map[ObjectKey, str] = Map()
        self._resources: Map[ObjectKey, Resource] = Map()
        self._writes: dict[ObjectKey, _Entry | None] = {}
        # Keys whose entry may still be unhashed (see `_UNHASHED`; `hash_pending`).
        self._unhashed: set[ObjectKey] = set()
        # Per source: the token of the ChangeSet applied last, if it left no conflict
        # with another source (then the next set may say what it changed: `touched`).
        self._applied: dict[str, object] = {}
        # Records loaded from the state directory that no live object has claimed yet.
        self._persisted: dict[ObjectKey, ObjectRecord] = {}
        if records:
            self.import_records(records)

    # -- persistence ---------------------------------------------------------------

    def import_records(self, records: Mapping[str, Mapping[str, Any]]) -> None:
        """Load records written by `export_records` (bad entries are skipped)."""
        for text, data in records.items():
            try:
                key = key_from_str(text)
                self._persisted[key] = ObjectRecord.from_json(data)
            except (KeyError, TypeError, ValueError):
                continue

    def export_records(self) -> dict[str, ObjectRecord]:
        """`{"Kind/namespace/name": {generation, spec_hash, creationTimestamp, uid, source}}`
        for live objects and for records no source has claimed or dropped yet. Each
        value is the record object itself (a read-only mapping), the same object while
        the record is unchanged, so writers can reuse its encoding. What is still
        unhashed is hashed in place first."""
        self.hash_pending(len(self._unhashed))
        return self.export_later()()

    def hash_pending(self, limit: int) -> int:
        """Hash up to `limit` objects stored without hashes (at start-up: all of them),
        so that a later export has (almost) none to hash: in steps, between applies,
        not in one go (~1 s at 50 000 routes). Returns how many are left."""
        pending = self._unhashed
        for _ in range(min(limit, len(pending))):
            entry = self._entries.get(pending.pop())
            if entry is not None:
                _hashed(entry)
        return len(pending)

    def export_later(self) -> Callable[[], dict[str, ObjectRecord]]:
        """`export_records` in two halves: this call copies what it needs (two dict
        copies at C level) and the function it returns builds the export from that copy,
        on another thread if need be (it changes nothing; an object still unhashed is
        hashed there, its entry left as it is), while applies go on here."""
        persisted, entries = dict(self._persisted), dict(self._entries)

        def export() -> dict[str, ObjectRecord]:
            out: dict[ObjectKey, ObjectRecord] = dict(persisted)
            out.update({key: _record(entry) for key, entry in entries.items()})
            return {key_to_str(key): out[key] for key in sorted(out)}

        return export

    # -- reading -------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        return Snapshot._of(self._stored, self._sources, self._resources)

    def get(self, key: ObjectKey) -> StoredObject | None:
        entry = self._entries.get(key)
        return entry.stored if entry else None

    # -- writing -------------------------------------------------------------------

    def apply(self, changeset: ChangeSet) -> Snapshot:
        """Make the objects of `changeset.source` exactly `changeset.objects`.

        When the set says it is the last applied set of its source changed at `touched`
        only (`ChangeSet.base`), only those keys are looked at: the cost is that of the
        change, not of the number of objects."""
        try:
            return self._apply(changeset)
        finally:
            self._commit()  # also after an error: the mirrors follow `_entries`

    def _apply(self, changeset: ChangeSet) -> Snapshot:
        source = changeset.source
        delta = changeset.base is not None and changeset.base is self._applied.get(source)
        self._applied.pop(source, None)
        added: set[ObjectKey] = set()
        updated: set[ObjectKey] = set()
        diagnostics: list[Diagnostic] = []
        timestamp: str | None = None
        objects = changeset.objects
        keys = changeset.touched if delta else objects.keys()

        for key in keys:
            incoming = objects.get(key)
            if incoming is None:
                continue  # a touched key that is gone: deleted below
            entry = self._entries.get(key)
            if entry is not None and entry.record.source != source:
                origin = incoming.origin
                diagnostics.append(
                    warning(
                        f"ignored: the same object is already defined by source "
                        f"{entry.record.source!r}",
                        file=origin.file if origin else None,
                        document=origin.document if origin else None,
                        object=str(key),
                    )
                )
                continue
            if entry is not None and entry.incoming is incoming.resource:
                if incoming.origin != entry.stored.origin:
                    self._set_stored(key, entry, replace(entry.stored, origin=incoming.origin))
                continue
            previous = (
                None
                if entry is not None or changeset.server_metadata
                else self._persisted.pop(key, None)
            )
            if entry is None and previous is None:
                # New: hashed when first needed (its next update, or an export). From an
                # API server too: one new object per change, its dump and digests the
                # larger part of this apply (the agent's profile, 3000 routes).
                s_hash, c_hash = _UNHASHED, _NO_CONTENT
            else:
                s_hash, c_hash = hashes(incoming.resource)
            if entry is not None:
                _hashed(entry)
                self._unhashed.discard(key)
            if changeset.server_metadata:
                if entry is not None and c_hash == entry.content:
                    entry.incoming = incoming.resource
                    continue
                (updated if entry is not None else added).add(key)
                entry = _Entry(
                    incoming,
                    _server_record(incoming.resource, s_hash, source),
                    c_hash,
                    incoming.resource,
                )
                self._entries[key] = entry
                if c_hash == _NO_CONTENT:
                    self._unhashed.add(key)
                self._set_stored(key, entry, entry.stored)
                continue
            if entry is not None:
                record = entry.record
                if c_hash == entry.content:
                    if incoming.origin != entry.stored.origin:
                        self._set_stored(key, entry, replace(entry.stored, origin=incoming.origin))
                    entry.incoming = incoming.resource
                    continue
                if s_hash != record.spec_hash:
                    record = replace(record, generation=record.generation + 1, spec_hash=s_hash)
                updated.add(key)
            else:
                if previous is not None:
                    record = replace(previous, source=source)
                    if s_hash != previous.spec_hash:
                        record = replace(
                            record, generation=previous.generation + 1, spec_hash=s_hash
                        )
                else:
                    if timestamp is None:
                        timestamp = self._now()
                    record = ObjectRecord(1, s_hash, timestamp, self._new_uid(), source)
                added.add(key)
            entry = _Entry(
                StoredObject(_stamp(incoming.resource, record), incoming.origin),
                record,
                c_hash,
                incoming.resource,
            )
            self._entries[key] = entry
            if c_hash == _NO_CONTENT:
                self._unhashed.add(key)
            self._set_stored(key, entry, entry.stored)

        deleted = {
            key
            for key in (changeset.touched if delta else self._entries)
            if key not in objects
            and (entry := self._entries.get(key)) is not None
            and entry.record.source == source
        }
        for key in deleted:
            del self._entries[key]
            self._unhashed.discard(key)
            self._writes[key] = None
        # Objects of this source that vanished while we were down are gone for good.
        if self._persisted:
            for key in [k for k, r in self._persisted.items() if r.source == source]:
                del self._persisted[key]
        if not diagnostics:
            self._applied[source] = changeset.token

        self._commit()
        return Snapshot._of(
            self._stored,
            self._sources,
            self._resources,
            added=frozenset(added),
            updated=frozenset(updated),
            deleted=frozenset(deleted),
            diagnostics=tuple(diagnostics),
        )

    def _set_stored(self, key: ObjectKey, entry: _Entry, stored: StoredObject) -> None:
        entry.stored = stored
        self._writes[key] = entry

    def _commit(self) -> None:
        """The apply's writes into the persistent mirrors."""
        writes = self._writes
        if not writes:
            return
        self._writes = {}
        if not self._stored:  # the first apply: built from dicts at once
            live = [(k, e) for k, e in writes.items() if e is not None]
            self._stored = Map({k: e.stored for k, e in live})
            self._sources = Map({k: e.record.source for k, e in live})
            self._resources = Map({k: e.stored.resource for k, e in live})
            return
        with (
            self._stored.mutate() as stored,
            self._sources.mutate() as sources,
            self._resources.mutate() as resources,
        ):
            for key, entry in writes.items():
                if entry is None:
                    for mutation in (stored, sources, resources):
                        mutation.pop(key, None)
                    continue
                stored[key] = entry.stored
                if sources.get(key) != entry.record.source:
                    sources[key] = entry.record.source
                resources[key] = entry.stored.resource
            self._stored = stored.finish()
            self._sources = sources.finish()
            self._resources = resources.finish()


def _record(entry: _Entry) -> ObjectRecord:
    """The entry's record with its spec hash, without changing the entry."""
    record = entry.record
    if entry.content == _NO_CONTENT and entry.incoming is not None:
        record = replace(record, spec_hash=hashes(entry.incoming)[0])
    return record


def _hashed(entry: _Entry) -> _Entry:
    """The entry with its hashes filled in (see `_UNHASHED`)."""
    if entry.content == _NO_CONTENT and entry.incoming is not None:
        s_hash, entry.content = hashes(entry.incoming)
        entry.record = replace(entry.record, spec_hash=s_hash)
    return entry


def _server_record(resource: Resource, spec_hash: str, source: str) -> ObjectRecord:
    """The record of an object whose metadata an API server owns: taken, not made."""
    meta = resource.metadata
    return ObjectRecord(
        meta.generation, spec_hash, meta.creation_timestamp or "", meta.uid or "", source
    )


def _stamp(resource: Resource, record: ObjectRecord) -> Resource:
    meta = resource.metadata.model_copy(
        update={
            "generation": record.generation,
            "creation_timestamp": record.creation_timestamp,
            "uid": record.uid,
            "resource_version": None,  # files have none (only an API server sets it)
        }
    )
    return resource.model_copy(update={"metadata": meta})
