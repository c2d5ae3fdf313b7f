"""The API resources Propylon reads and writes, and which versions it prefers."""

from __future__ import annotations

from propylon.kube.api import Kind

GW = "gateway.networking.k8s.io"
XGW = "gateway.networking.x-k8s.io"  # Gateway API's experimental kinds (v1.4: XListenerSet)

# Watched by operator and agent: what the pure core reads. For a kind served in several
# versions, the first one the API server serves is used (`resolve`); Gateway API v1.4.1
# and newer serve all of these.
GATEWAY_CLASS = Kind(GW, "v1", "gatewayclasses", "GatewayClass", namespaced=False)
GATEWAY = Kind(GW, "v1", "gateways", "Gateway", namespaced=True)
HTTP_ROUTE = Kind(GW, "v1", "httproutes", "HTTPRoute", namespaced=True)
GRPC_ROUTE = Kind(GW, "v1", "grpcroutes", "GRPCRoute", namespaced=True)
TLS_ROUTE = Kind(GW, "v1alpha2", "tlsroutes", "TLSRoute", namespaced=True)
# v1 from Gateway API v1.6 (its standard channel no longer serves v1alpha2).
TCP_ROUTE = Kind(GW, "v1", "tcproutes", "TCPRoute", namespaced=True)
UDP_ROUTE = Kind(GW, "v1", "udproutes", "UDPRoute", namespaced=True)
REFERENCE_GRANT = Kind(GW, "v1beta1", "referencegrants", "ReferenceGrant", namespaced=True)
BACKEND_TLS_POLICY = Kind(GW, "v1", "backendtlspolicies", "BackendTLSPolicy", namespaced=True)
# Gateway API v1.5+ (standard channel); XListenerSet is v1.4's experimental one. Either
# CRD may be absent: its reflector waits for it (see propylon.kube.source).
LISTENER_SET = Kind(GW, "v1", "listenersets", "ListenerSet", namespaced=True)
X_LISTENER_SET = Kind(XGW, "v1alpha1", "xlistenersets", "XListenerSet", namespaced=True)
SERVICE = Kind("", "v1", "services", "Service", namespaced=True)
ENDPOINT_SLICE = Kind("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True)
NAMESPACE = Kind("", "v1", "namespaces", "Namespace", namespaced=False)
SECRET = Kind("", "v1", "secrets", "Secret", namespaced=True)
CONFIG_MAP = Kind("", "v1", "configmaps", "ConfigMap", namespaced=True)
GATEWAY_CLASS_CONFIG = Kind(
    "cilium.io", "v2alpha1", "ciliumgatewayclassconfigs", "CiliumGatewayClassConfig", True
)
LB_IP_POOL = Kind("cilium.io", "v2", "ciliumloadbalancerippools", "CiliumLoadBalancerIPPool", False)
# Network policy (propylon.policy): read by the agents only, which enforce it.
NETWORK_POLICY = Kind("cilium.io", "v2", "ciliumnetworkpolicies", "CiliumNetworkPolicy", True)
CLUSTERWIDE_NETWORK_POLICY = Kind(
    "cilium.io", "v2", "ciliumclusterwidenetworkpolicies", "CiliumClusterwideNetworkPolicy", False
)
POD = Kind("", "v1", "pods", "Pod", namespaced=True)  # labels: the endpoints' identities

# Written (and for CRDs, watched to notice a kind installed later).
LEASE = Kind("coordination.k8s.io", "v1", "leases", "Lease", namespaced=True)
EVENT = Kind("events.k8s.io", "v1", "events", "Event", namespaced=True)
NODE = Kind("", "v1", "nodes", "Node", namespaced=False)
CRD = Kind(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False
)

WATCHED: tuple[Kind, ...] = (
    GATEWAY_CLASS,
    GATEWAY,
    HTTP_ROUTE,
    GRPC_ROUTE,
    TLS_ROUTE,
    TCP_ROUTE,
    UDP_ROUTE,
    REFERENCE_GRANT,
    BACKEND_TLS_POLICY,
    LISTENER_SET,
    X_LISTENER_SET,
    SERVICE,
    ENDPOINT_SLICE,
    NAMESPACE,
    SECRET,
    CONFIG_MAP,
    GATEWAY_CLASS_CONFIG,
    LB_IP_POOL,
)

POLICY: tuple[Kind, ...] = (NETWORK_POLICY, CLUSTERWIDE_NETWORK_POLICY, POD)

# Kinds whose status the operator writes.
WITH_STATUS: dict[str, Kind] = {
    k.kind: k
    for k in (
        GATEWAY_CLASS,
        GATEWAY_CLASS_CONFIG,
        GATEWAY,
        HTTP_ROUTE,
        GRPC_ROUTE,
        TLS_ROUTE,
        TCP_ROUTE,
        UDP_ROUTE,
        BACKEND_TLS_POLICY,
        LISTENER_SET,
        X_LISTENER_SET,
    )
}
BY_KIND: dict[str, Kind] = {k.kind: k for k in WATCHED}

# The agents' per-node reports (see propylon.kube.nodereport).
NODE_REPORT = LEASE
