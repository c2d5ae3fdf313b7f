"""Object identity and metadata shared by every Kubernetes-style resource."""

from __future__ import annotations

from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field


class ObjectKey(NamedTuple):
    """Identity of an object: its kind, namespace ("" for cluster-scoped) and name."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind} {self.namespace}/{self.name}"
        return f"{self.kind} {self.name}"

    @classmethod
    def parse(cls, text: str) -> ObjectKey:
        """The key `str(key)` was made from (names hold no space or slash)."""
        kind, _, rest = text.partition(" ")
        namespace, _, name = rest.rpartition("/")
        return cls(kind, namespace, name)


#: One set object per distinct set of field names given. Pydantic keeps a set of the
#: fields given in every model instance, ~250 bytes, for each nested structure of each
#: object: a third of a parsed manifest's memory (tests/resources check it is shared).
#: Only pydantic reads it (for `exclude_unset`, which Propylon never uses), and pydantic
#: copies it before changing it (`model_copy`); the models are never assigned to. A memo
#: of immutable values: nothing computed depends on it.
_FIELDS_SETS: dict[frozenset[str], set[str]] = {}


def share_fields_set(model: BaseModel) -> None:
    """Replace `model`'s set of given fields by the shared one with the same names."""
    given = model.__pydantic_fields_set__
    shared = _FIELDS_SETS.setdefault(frozenset(given), given)
    if shared is not given:
        object.__setattr__(model, "__pydantic_fields_set__", shared)


class ObjectMeta(BaseModel):
    """The subset of Kubernetes ObjectMeta that Propylon reads.

    `generation`, `creationTimestamp` and `uid` are owned by the store (as the API
    server owns them): whatever a file says for them is replaced. In Kubernetes mode
    they (and `resourceVersion`) are the API server's.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    def model_post_init(self, context: Any, /) -> None:
        share_fields_set(self)

    name: str = Field(min_length=1, max_length=253)
    namespace: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int = 1
    creation_timestamp: str | None = Field(default=None, alias="creationTimestamp")
    uid: str | None = None
    # Set by an API server (Kubernetes mode); files have none.
    resource_version: str | None = Field(default=None, alias="resourceVersion")
