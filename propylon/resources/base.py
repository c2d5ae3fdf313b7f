"""The common base of every typed resource (see `struct` for the records)."""

from __future__ import annotations

from propylon.resources.meta import ObjectKey, ObjectMeta
from propylon.resources.struct import STRUCT_CONFIG, Struct, record

__all__ = ["STRUCT_CONFIG", "Resource", "Struct", "record"]


@record
class Resource(Struct):
    """A top-level object. Subclasses fix `kind` and the default `api_version`."""

    api_version: str
    kind: str
    metadata: ObjectMeta

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.kind, self.metadata.namespace, self.metadata.name)
