"""Typed Kubernetes-style resources that Propylon reads: Gateway API, core, Cilium.

`parse_object(doc)` turns a YAML/JSON mapping into one of these models, applying CRD
defaults, or raises `ResourceError` naming the kind, object and field. Models dump back to
the user's shape with `model_dump(by_alias=True, exclude_none=True, mode="json")`.
"""

from propylon.resources.base import Resource, Struct
from propylon.resources.cilium import (
    CiliumGatewayClassConfig,
    CiliumLoadBalancerIPPool,
    GatewayClassServiceConfig,
    IPPoolBlock,
)
from propylon.resources.ciliumpolicy import (
    CiliumClusterwideNetworkPolicy,
    CiliumNetworkPolicy,
    PolicyRule,
)
from propylon.resources.common import (
    GATEWAY_GROUP,
    BackendObjectReference,
    BackendRef,
    LabelSelector,
    LabelSelectorRequirement,
    LocalObjectReference,
    ParentReference,
    SecretObjectReference,
    parse_duration_ms,
)
from propylon.resources.core import (
    ConfigMap,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    LoadBalancerIngress,
    LoadBalancerStatus,
    Namespace,
    Node,
    Pod,
    Secret,
    Service,
    ServicePort,
    ServiceSpec,
    ServiceStatus,
)
from propylon.resources.errors import ResourceError, UnknownKindError
from propylon.resources.gateway import (
    AllowedRoutes,
    Gateway,
    GatewayClass,
    GatewaySpec,
    GatewaySpecAddress,
    GatewayTLSConfig,
    Listener,
    RouteGroupKind,
)
from propylon.resources.listenerset import (
    LISTENER_SET_GROUPS,
    X_GATEWAY_GROUP,
    ListenerSet,
    ParentGatewayReference,
)
from propylon.resources.meta import ObjectKey, ObjectMeta
from propylon.resources.parse import CLUSTER_SCOPED_KINDS, KINDS, NAMESPACED_KINDS, parse_object
from propylon.resources.policy import BackendTLSPolicy, ReferenceGrant
from propylon.resources.routes import (
    GRPCBackendRef,
    GRPCRoute,
    GRPCRouteFilter,
    GRPCRouteMatch,
    GRPCRouteRule,
    HTTPBackendRef,
    HTTPHeaderFilter,
    HTTPRoute,
    HTTPRouteFilter,
    HTTPRouteMatch,
    HTTPRouteRule,
    TLSRoute,
)
from propylon.resources.streamroutes import StreamRouteRule, TCPRoute, UDPRoute

__all__ = [
    "CLUSTER_SCOPED_KINDS",
    "GATEWAY_GROUP",
    "KINDS",
    "LISTENER_SET_GROUPS",
    "NAMESPACED_KINDS",
    "X_GATEWAY_GROUP",
    "AllowedRoutes",
    "BackendObjectReference",
    "BackendRef",
    "BackendTLSPolicy",
    "CiliumClusterwideNetworkPolicy",
    "CiliumGatewayClassConfig",
    "CiliumLoadBalancerIPPool",
    "CiliumNetworkPolicy",
    "ConfigMap",
    "Endpoint",
    "EndpointPort",
    "EndpointSlice",
    "GRPCBackendRef",
    "GRPCRoute",
    "GRPCRouteFilter",
    "GRPCRouteMatch",
    "GRPCRouteRule",
    "Gateway",
    "GatewayClass",
    "GatewayClassServiceConfig",
    "GatewaySpec",
    "GatewaySpecAddress",
    "GatewayTLSConfig",
    "HTTPBackendRef",
    "HTTPHeaderFilter",
    "HTTPRoute",
    "HTTPRouteFilter",
    "HTTPRouteMatch",
    "HTTPRouteRule",
    "IPPoolBlock",
    "LabelSelector",
    "LabelSelectorRequirement",
    "Listener",
    "ListenerSet",
    "LoadBalancerIngress",
    "LoadBalancerStatus",
    "LocalObjectReference",
    "Namespace",
    "Node",
    "ObjectKey",
    "ObjectMeta",
    "ParentGatewayReference",
    "ParentReference",
    "Pod",
    "PolicyRule",
    "ReferenceGrant",
    "Resource",
    "ResourceError",
    "RouteGroupKind",
    "Secret",
    "SecretObjectReference",
    "Service",
    "ServicePort",
    "ServiceSpec",
    "ServiceStatus",
    "StreamRouteRule",
    "Struct",
    "TCPRoute",
    "TLSRoute",
    "UDPRoute",
    "UnknownKindError",
    "parse_duration_ms",
    "parse_object",
]
