"""What a source hands to the store: the complete desired set of its objects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from propylon.resources.meta import ObjectKey
from propylon.store.diagnostics import Diagnostic
from propylon.store.types import Resource


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an object came from: a file and the 0-based index of its YAML document."""

    file: str
    document: int

    def __str__(self) -> str:
        return f"{self.file}#{self.document}"


@dataclass(frozen=True, slots=True)
class StoredObject:
    resource: Resource
    origin: Origin | None = None


def _empty() -> Mapping[ObjectKey, StoredObject]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """The complete desired set of objects of one source (not a delta): an object of
    `source` that the store holds and this set lacks is deleted.

    `diagnostics` are the source's current problems (bad files, invalid objects,
    duplicates); they replace the source's previous diagnostics.

    A hint for the store, which it may ignore: `base` is the `token` of an earlier set of
    the same source, and `touched` the keys whose entry may differ from that set's (any
    other key maps to the same `StoredObject`). Then a store that applied that set last
    need only look at `touched`."""

    objects: Mapping[ObjectKey, StoredObject] = field(default_factory=_empty)
    diagnostics: tuple[Diagnostic, ...] = ()
    source: str = "files"
    base: object | None = field(default=None, compare=False, repr=False)
    touched: frozenset[ObjectKey] = field(default=frozenset(), compare=False, repr=False)
    token: object = field(default_factory=object, compare=False, repr=False)
    # True when the source is an API server: the objects' uid, generation and
    # creationTimestamp are real and kept as they are (files: the store emulates them).
    server_metadata: bool = False

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.is_error)
