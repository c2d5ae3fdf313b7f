"""The common base of every typed resource and its nested structures."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from propylon.resources.meta import ObjectKey, ObjectMeta, share_fields_set


class Struct(BaseModel):
    """Nested structure: Python snake_case attributes, YAML camelCase aliases.

    Unknown fields are dropped, as the API server prunes fields a structural schema
    does not declare."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        validate_default=False,
    )

    def model_post_init(self, context: Any, /) -> None:
        share_fields_set(self)


class Resource(Struct):
    """A top-level object. Subclasses fix `kind` and the default `api_version`."""

    api_version: str
    kind: str
    metadata: ObjectMeta

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.kind, self.metadata.namespace, self.metadata.name)
