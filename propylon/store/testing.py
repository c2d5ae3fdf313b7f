"""Small stand-ins for `propylon.resources`, for tests of the shell packages.

`FakeResource` is a `Resource` of any kind; `fake_parse` behaves like
`propylon.resources.parse_object` for a handful of kinds: it raises `FakeResourceError`
(same attributes as `ResourceError`) when `spec.invalid` is present and
`FakeUnknownKindError` for kinds it does not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, model_validator

from propylon.resources import Resource, Struct
from propylon.resources.base import record

FAKE_CLUSTER_SCOPED = frozenset({"GatewayClass", "CiliumLoadBalancerIPPool"})
FAKE_KINDS = frozenset(
    {
        "GatewayClass",
        "Gateway",
        "HTTPRoute",
        "GRPCRoute",
        "TLSRoute",
        "TCPRoute",
        "UDPRoute",
        "ReferenceGrant",
        "Service",
        "Secret",
        "ConfigMap",
        "EndpointSlice",
        "BackendTLSPolicy",
        "CiliumGatewayClassConfig",
        "CiliumLoadBalancerIPPool",
    }
)


@record
class FakeResource(Resource):
    """Any kind; fields other than apiVersion/kind/metadata are kept as plain data
    (attributes, and top-level keys of `model_dump`)."""

    other: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _keep_the_rest(cls, raw: Any) -> Any:
        if not isinstance(raw, Mapping) or "other" in raw:
            return raw
        known = {k: v for k, v in raw.items() if k in _OWN_FIELDS}
        return {**known, "other": {k: v for k, v in raw.items() if k not in _OWN_FIELDS}}

    def model_dump(
        self, *, mode: str = "json", by_alias: bool = True, exclude_none: bool = False
    ) -> dict[str, Any]:
        dumped = Struct.model_dump(self, mode=mode, by_alias=by_alias, exclude_none=exclude_none)
        dumped.update(dumped.pop("other"))
        return dumped

    def __getattr__(self, name: str) -> Any:
        try:
            other = object.__getattribute__(self, "other")
        except AttributeError:
            raise AttributeError(name) from None
        if name in other:
            return other[name]
        raise AttributeError(name)


_OWN_FIELDS = frozenset({"apiVersion", "kind", "metadata", "api_version"})


class FakeResourceError(ValueError):
    def __init__(self, kind: str, namespace: str, name: str, field: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.field = field
        self.message = message


class FakeUnknownKindError(FakeResourceError):
    pass


def fake_parse(doc: Mapping[str, Any]) -> FakeResource:
    kind = str(doc.get("kind", ""))
    meta = dict(doc.get("metadata") or {})
    name = str(meta.get("name", ""))
    namespace = "" if kind in FAKE_CLUSTER_SCOPED else str(meta.get("namespace") or "default")
    if kind not in FAKE_KINDS:
        raise FakeUnknownKindError(kind, namespace, name, "kind", f"unknown kind {kind!r}")
    spec = doc.get("spec")
    if isinstance(spec, Mapping) and "invalid" in spec:
        raise FakeResourceError(kind, namespace, name, "spec.invalid", str(spec["invalid"]))
    meta["namespace"] = namespace
    return FakeResource.model_validate({**doc, "metadata": meta})


def fake_object(
    kind: str,
    name: str,
    namespace: str = "default",
    *,
    api_version: str = "gateway.networking.k8s.io/v1",
    **fields: Any,
) -> FakeResource:
    return fake_parse(
        {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            **fields,
        }
    )
