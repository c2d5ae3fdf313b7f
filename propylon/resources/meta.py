"""Object identity and metadata shared by every Kubernetes-style resource."""

from __future__ import annotations

from typing import NamedTuple

from pydantic import Field

from propylon.resources.struct import Struct, no_labels, record


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


@record
class ObjectMeta(Struct):
    """The subset of Kubernetes ObjectMeta that Propylon reads.

    `generation`, `creationTimestamp` and `uid` are owned by the store (as the API
    server owns them): whatever a file says for them is replaced. In Kubernetes mode
    they (and `resourceVersion`) are the API server's.
    """

    name: str = Field(min_length=1, max_length=253)
    namespace: str = ""
    labels: dict[str, str] = Field(default_factory=no_labels)  # shared when empty
    annotations: dict[str, str] = Field(default_factory=no_labels)
    generation: int = 1
    creation_timestamp: str | None = Field(default=None, alias="creationTimestamp")
    uid: str | None = None
    # Set by an API server (Kubernetes mode); files have none.
    resource_version: str | None = Field(default=None, alias="resourceVersion")
