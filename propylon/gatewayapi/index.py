"""Lookups over the input objects, grouped by kind."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import TypeVar

from propylon.resources import (
    BackendTLSPolicy,
    CiliumGatewayClassConfig,
    CiliumLoadBalancerIPPool,
    ConfigMap,
    EndpointSlice,
    Gateway,
    GatewayClass,
    GRPCRoute,
    HTTPRoute,
    ListenerSet,
    Namespace,
    Node,
    ObjectKey,
    ReferenceGrant,
    Resource,
    Secret,
    Service,
    TCPRoute,
    TLSRoute,
    UDPRoute,
)

T = TypeVar("T", bound=Resource)
NsName = tuple[str, str]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def age_key(resource: Resource) -> tuple[bool, str, str, str]:
    """Oldest first, then namespace/name: the Gateway API's tie-break order."""
    ts = resource.metadata.creation_timestamp
    return (ts is None, ts or "", resource.metadata.namespace, resource.metadata.name)


class Index:
    def __init__(self, objects: Mapping[ObjectKey, Resource]) -> None:
        by_type: dict[type[Resource], list[Resource]] = defaultdict(list)
        for key in sorted(objects):
            by_type[type(objects[key])].append(objects[key])
        self._by_type = by_type

        def of(cls: type[T]) -> dict[NsName, T]:
            return {
                (o.metadata.namespace, o.metadata.name): o
                for o in by_type.get(cls, [])
                if isinstance(o, cls)
            }

        self.gateway_classes = {n: c for (_, n), c in of(GatewayClass).items()}
        self.gateways = of(Gateway)
        self.http_routes = of(HTTPRoute)
        self.grpc_routes = of(GRPCRoute)
        self.tls_routes = of(TLSRoute)
        self.tcp_routes = of(TCPRoute)
        self.udp_routes = of(UDPRoute)
        self.services = of(Service)
        self.secrets = of(Secret)
        self.config_maps = of(ConfigMap)
        self.namespaces = {n: o for (_, n), o in of(Namespace).items()}
        self.nodes = {n: o for (_, n), o in of(Node).items()}
        self.class_configs = of(CiliumGatewayClassConfig)
        self.ip_pools = {n: o for (_, n), o in of(CiliumLoadBalancerIPPool).items()}
        self.backend_tls_policies = of(BackendTLSPolicy)
        # By key: ListenerSet and XListenerSet may share a namespace/name.
        self.listener_sets: dict[ObjectKey, ListenerSet] = {
            o.key: o for o in by_type.get(ListenerSet, []) if isinstance(o, ListenerSet)
        }
        self.reference_grants: dict[str, list[ReferenceGrant]] = defaultdict(list)
        for (ns, _), grant in of(ReferenceGrant).items():
            self.reference_grants[ns].append(grant)
        self.slices: dict[NsName, list[EndpointSlice]] = defaultdict(list)
        for (ns, _), eps in of(EndpointSlice).items():
            svc = eps.metadata.labels.get(SERVICE_NAME_LABEL)
            if svc:
                self.slices[(ns, svc)].append(eps)

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        ns = self.namespaces.get(namespace)
        if ns is None:
            return {NAMESPACE_NAME_LABEL: namespace}
        return ns.effective_labels
