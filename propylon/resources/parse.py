"""Documents (parsed YAML/JSON mappings) -> typed resources."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from propylon.resources.base import Resource
from propylon.resources.cilium import CiliumGatewayClassConfig, CiliumLoadBalancerIPPool
from propylon.resources.common import GATEWAY_GROUP
from propylon.resources.core import ConfigMap, EndpointSlice, Namespace, Secret, Service
from propylon.resources.errors import ResourceError, UnknownKindError
from propylon.resources.gateway import Gateway, GatewayClass
from propylon.resources.policy import BackendTLSPolicy, ReferenceGrant
from propylon.resources.routes import GRPCRoute, HTTPRoute, TLSRoute

_GW = GATEWAY_GROUP

# (apiVersion, kind) -> model: the versions a v1.4.1 API server (experimental channel) serves.
KINDS: Mapping[tuple[str, str], type[Resource]] = {
    (f"{_GW}/v1", "GatewayClass"): GatewayClass,
    (f"{_GW}/v1beta1", "GatewayClass"): GatewayClass,
    (f"{_GW}/v1", "Gateway"): Gateway,
    (f"{_GW}/v1beta1", "Gateway"): Gateway,
    (f"{_GW}/v1", "HTTPRoute"): HTTPRoute,
    (f"{_GW}/v1beta1", "HTTPRoute"): HTTPRoute,
    (f"{_GW}/v1", "GRPCRoute"): GRPCRoute,
    (f"{_GW}/v1", "TLSRoute"): TLSRoute,
    (f"{_GW}/v1alpha2", "TLSRoute"): TLSRoute,
    (f"{_GW}/v1alpha3", "TLSRoute"): TLSRoute,
    (f"{_GW}/v1beta1", "ReferenceGrant"): ReferenceGrant,
    (f"{_GW}/v1", "ReferenceGrant"): ReferenceGrant,
    (f"{_GW}/v1", "BackendTLSPolicy"): BackendTLSPolicy,
    (f"{_GW}/v1alpha3", "BackendTLSPolicy"): BackendTLSPolicy,
    ("v1", "Namespace"): Namespace,
    ("v1", "Service"): Service,
    ("v1", "Secret"): Secret,
    ("v1", "ConfigMap"): ConfigMap,
    ("discovery.k8s.io/v1", "EndpointSlice"): EndpointSlice,
    ("cilium.io/v2alpha1", "CiliumGatewayClassConfig"): CiliumGatewayClassConfig,
    ("cilium.io/v2alpha1", "CiliumLoadBalancerIPPool"): CiliumLoadBalancerIPPool,
    ("cilium.io/v2", "CiliumLoadBalancerIPPool"): CiliumLoadBalancerIPPool,
}

CLUSTER_SCOPED_KINDS: frozenset[str] = frozenset(
    {"GatewayClass", "Namespace", "CiliumLoadBalancerIPPool"}
)
NAMESPACED_KINDS: frozenset[str] = frozenset(
    kind for (_, kind) in KINDS if kind not in CLUSTER_SCOPED_KINDS
)

# Union members that pydantic puts into error locations; they are not YAML fields.
_LOC_NOISE = frozenset({"int", "str", "float", "bool", "list", "dict", "none"})


def _field_path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in _LOC_NOISE or "[" in part:
            continue
        else:
            path += f".{part}" if path else part
    return path


def _message(error: Mapping[str, Any]) -> str:
    msg = str(error.get("msg", "invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg


def parse_object(doc: Mapping[str, Any]) -> Resource:
    """Validate one document and apply CRD defaults, as the API server would.

    Raises `UnknownKindError` for kinds Propylon does not read and `ResourceError`
    (naming the field) for invalid objects."""
    if not isinstance(doc, Mapping):
        raise ResourceError("", "", "", "", "document is not a mapping")
    api_version = doc.get("apiVersion")
    kind = doc.get("kind")
    raw_meta = doc.get("metadata")
    meta: Mapping[str, Any] = raw_meta if isinstance(raw_meta, Mapping) else {}
    name = meta.get("name")
    name = name if isinstance(name, str) else ""
    namespace = meta.get("namespace")
    namespace = namespace if isinstance(namespace, str) else ""
    kind_s = kind if isinstance(kind, str) else ""

    if not isinstance(api_version, str) or not api_version:
        raise ResourceError(kind_s, namespace, name, "apiVersion", "Field required")
    if not kind_s:
        raise ResourceError("", namespace, name, "kind", "Field required")
    model = KINDS.get((api_version, kind_s))
    if model is None:
        known = sorted(v for (v, k) in KINDS if k == kind_s)
        hint = f" (served versions: {', '.join(known)})" if known else ""
        raise UnknownKindError(
            kind_s, namespace, name, "apiVersion", f"unknown kind {api_version}/{kind_s}{hint}"
        )
    if not isinstance(raw_meta, Mapping):
        raise ResourceError(kind_s, namespace, name, "metadata", "Field required")

    if kind_s in CLUSTER_SCOPED_KINDS:
        namespace = ""
    elif not namespace:
        namespace = "default"
    fixed = dict(doc)
    fixed["metadata"] = {**meta, "namespace": namespace}

    try:
        return model.model_validate(fixed)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        message = _message(first)
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        raise ResourceError(kind_s, namespace, name, _field_path(first["loc"]), message) from None
