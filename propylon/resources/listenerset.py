"""ListenerSet (gateway.networking.k8s.io v1, Gateway API v1.5+) and its experimental
predecessor XListenerSet (gateway.networking.x-k8s.io v1alpha1, v1.4): one model, the
object's own `kind` tells them apart (and is part of its key)."""

from __future__ import annotations

from pydantic import Field, field_validator

from propylon.resources.base import Resource, Struct, record
from propylon.resources.common import GATEWAY_GROUP, Namespace
from propylon.resources.gateway import Listener, unique_listeners

X_GATEWAY_GROUP = "gateway.networking.x-k8s.io"
# kind -> the API group its objects (and routes' parentRefs to them) use.
LISTENER_SET_GROUPS: dict[str, str] = {
    "ListenerSet": GATEWAY_GROUP,
    "XListenerSet": X_GATEWAY_GROUP,
}


@record
class ParentGatewayReference(Struct):
    group: str = GATEWAY_GROUP
    kind: str = "Gateway"
    name: str = Field(min_length=1, max_length=253)
    namespace: Namespace | None = None


@record
class ListenerSetSpec(Struct):
    parent_ref: ParentGatewayReference
    listeners: list[Listener] = Field(min_length=1, max_length=64)

    @field_validator("listeners")
    @classmethod
    def _unique_listeners(cls, listeners: list[Listener]) -> list[Listener]:
        return unique_listeners(listeners)


@record
class ListenerSet(Resource):
    api_version: str = f"{GATEWAY_GROUP}/v1"
    kind: str = "ListenerSet"
    spec: ListenerSetSpec

    @property
    def group(self) -> str:
        return LISTENER_SET_GROUPS.get(self.kind, GATEWAY_GROUP)
