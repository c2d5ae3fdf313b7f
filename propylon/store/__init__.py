"""The object store: `ChangeSet` in, `Snapshot` out; owns generation, creation time, uid."""

from propylon.store.changeset import ChangeSet, Origin, StoredObject
from propylon.store.diagnostics import Diagnostic, Severity, error, warning
from propylon.store.store import (
    ObjectRecord,
    Snapshot,
    Store,
    key_from_str,
    key_to_str,
)
from propylon.store.types import Resource

__all__ = [
    "ChangeSet",
    "Diagnostic",
    "ObjectRecord",
    "Origin",
    "Resource",
    "Severity",
    "Snapshot",
    "Store",
    "StoredObject",
    "error",
    "key_from_str",
    "key_to_str",
    "warning",
]
