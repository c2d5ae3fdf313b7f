"""The resource type the store holds: `propylon.resources.Resource` (a slotted record
that pydantic validates: `api_version`, `kind`, `metadata` and `key`). Tests use subclasses of it
(`propylon.store.testing.FakeResource`)."""

from __future__ import annotations

from propylon.resources import Resource

__all__ = ["Resource"]
