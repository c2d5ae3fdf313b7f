"""Documents (parsed YAML/JSON mappings) -> typed resources."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from propylon.resources.base import Resource
from propylon.resources.cilium import CiliumGatewayClassConfig, CiliumLoadBalancerIPPool
from propylon.resources.ciliumpolicy import CiliumClusterwideNetworkPolicy, CiliumNetworkPolicy
from propylon.resources.common import GATEWAY_GROUP
from propylon.resources.core import (
    ConfigMap,
    EndpointSlice,
    Namespace,
    Node,
    Pod,
    Secret,
    Service,
)
from propylon.resources.crd import CRDSchemas, CustomResourceDefinition
from propylon.resources.errors import ResourceError, UnknownKindError
from propylon.resources.gateway import Gateway, GatewayClass
from propylon.resources.listenerset import X_GATEWAY_GROUP, ListenerSet
from propylon.resources.names import metadata_ok, metadata_problems
from propylon.resources.policy import BackendTLSPolicy, ReferenceGrant
from propylon.resources.routes import GRPCRoute, HTTPRoute, TLSRoute
from propylon.resources.streamroutes import TCPRoute, UDPRoute

_GW = GATEWAY_GROUP

# (apiVersion, kind) -> model: the versions a v1.4.1 API server (experimental channel)
# serves, and v1.6's ListenerSet.
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
    # v1 from Gateway API v1.6 (standard channel); v1alpha2 before (experimental).
    (f"{_GW}/v1", "TCPRoute"): TCPRoute,
    (f"{_GW}/v1alpha2", "TCPRoute"): TCPRoute,
    (f"{_GW}/v1", "UDPRoute"): UDPRoute,
    (f"{_GW}/v1alpha2", "UDPRoute"): UDPRoute,
    (f"{_GW}/v1beta1", "ReferenceGrant"): ReferenceGrant,
    (f"{_GW}/v1", "ReferenceGrant"): ReferenceGrant,
    (f"{_GW}/v1", "ListenerSet"): ListenerSet,
    (f"{X_GATEWAY_GROUP}/v1alpha1", "XListenerSet"): ListenerSet,
    (f"{_GW}/v1", "BackendTLSPolicy"): BackendTLSPolicy,
    (f"{_GW}/v1alpha3", "BackendTLSPolicy"): BackendTLSPolicy,
    ("v1", "Namespace"): Namespace,
    ("v1", "Node"): Node,
    ("v1", "Service"): Service,
    ("v1", "Secret"): Secret,
    ("v1", "ConfigMap"): ConfigMap,
    ("discovery.k8s.io/v1", "EndpointSlice"): EndpointSlice,
    ("v1", "Pod"): Pod,
    ("cilium.io/v2", "CiliumNetworkPolicy"): CiliumNetworkPolicy,
    ("cilium.io/v2", "CiliumClusterwideNetworkPolicy"): CiliumClusterwideNetworkPolicy,
    ("cilium.io/v2alpha1", "CiliumGatewayClassConfig"): CiliumGatewayClassConfig,
    ("cilium.io/v2alpha1", "CiliumLoadBalancerIPPool"): CiliumLoadBalancerIPPool,
    ("cilium.io/v2", "CiliumLoadBalancerIPPool"): CiliumLoadBalancerIPPool,
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): CustomResourceDefinition,
}

CLUSTER_SCOPED_KINDS: frozenset[str] = frozenset(
    {
        "GatewayClass",
        "Namespace",
        "Node",
        "CiliumLoadBalancerIPPool",
        "CiliumClusterwideNetworkPolicy",
        "CustomResourceDefinition",
    }
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
    kind = error.get("type")
    ctx = error.get("ctx") or {}
    # The records are pydantic dataclasses whose lists are tuples: say what a pydantic
    # model with lists said (YAML has lists; "tuple" would be news to the user).
    if kind == "dataclass_type":
        return f"Input should be a valid dictionary or instance of {ctx.get('class_name', '')}"
    if kind == "tuple_type":
        return "Input should be a valid list"
    msg = str(error.get("msg", "invalid"))
    if kind in ("too_long", "too_short") and ctx.get("field_type") == "Tuple":
        msg = "List" + msg[len("Tuple") :]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg


def parse_object(doc: Mapping[str, Any], crds: CRDSchemas | None = None) -> Resource:
    """Validate one document and apply CRD defaults, as the API server would.

    With `crds` that serve the document's kind, it is first checked against the CRD
    itself (schema, CEL rules, unknown fields); the typed model then checks what it
    knows (and is all there is without CRDs). Raises `UnknownKindError` for kinds
    Propylon does not read and `ResourceError` (naming the field) for invalid objects."""
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
    problems = (
        []
        if metadata_ok(kind_s, meta, namespace)
        else list(metadata_problems(kind_s, meta, namespace))
    )
    if problems:
        field, message = problems[0]
        if len(problems) > 1:
            more = len(problems) - 1
            message += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise ResourceError(kind_s, namespace, name, field, message)
    fixed = dict(doc)
    fixed["metadata"] = {**meta, "namespace": namespace}
    if crds is not None and crds.serves(api_version, kind_s):
        found = crds.validate(fixed)
        if found:
            # Every problem, as the API server lists them (the first one's field leads).
            message = "; ".join([found[0].message, *(str(p) for p in found[1:10])])
            if len(found) > 10:
                message += f" (and {len(found) - 10} more)"
            raise ResourceError(kind_s, namespace, name, found[0].field, message)

    try:
        return model.model_validate(fixed)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        message = _message(first)
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        raise ResourceError(kind_s, namespace, name, _field_path(first["loc"]), message) from None
