"""Backend references -> model Clusters (Service + EndpointSlices), with ReferenceGrant
checks and BackendTLSPolicy."""

from __future__ import annotations

from dataclasses import dataclass, field

from propylon.gatewayapi import conditions as c
from propylon.gatewayapi.backendtlspolicy import BackendTLSPolicies
from propylon.gatewayapi.index import Index
from propylon.gatewayapi.names import name_part
from propylon.gatewayapi.referencegrants import permitted
from propylon.model import AppProtocol, Cluster, Endpoint, UpstreamTLS
from propylon.resources import (
    GATEWAY_GROUP,
    BackendObjectReference,
    Service,
    ServicePort,
)
from propylon.resources.common import is_ip_address

APP_PROTOCOLS = {
    "kubernetes.io/h2c": AppProtocol.H2C,
    "kubernetes.io/ws": AppProtocol.WEBSOCKET,
    # WebSocket over TLS: the TLS to the backend comes from its BackendTLSPolicy.
    "kubernetes.io/wss": AppProtocol.WEBSOCKET,
}
# Ordered by how much a cluster's protocol constrains Envoy. Since a route kind that
# needs another protocol than the Service port's own (GRPCRoute: HTTP/2, TLSRoute: TCP)
# gets a cluster of its own, clusters of one name agree on it; the rank is a safeguard.
_PROTOCOL_RANK = {
    AppProtocol.HTTP1: 0,
    AppProtocol.WEBSOCKET: 1,
    AppProtocol.TCP: 2,
    AppProtocol.UDP: 2,  # never shares a name with another protocol (suffix `:udp`)
    AppProtocol.H2C: 3,
}
# Problem reasons in the order that wins when several backends fail.
_REASON_RANK = (
    c.R_REF_NOT_PERMITTED,
    c.R_INVALID_KIND,
    c.R_BACKEND_NOT_FOUND,
    c.R_UNSUPPORTED_PROTOCOL,
)


_SUFFIXES = {
    AppProtocol.H2C: "h2c",
    AppProtocol.TCP: "tcp",
    AppProtocol.UDP: "udp",
    AppProtocol.WEBSOCKET: "ws",
}


def cluster_name(namespace: str, service: str, port: int, protocol: AppProtocol | None) -> str:
    """`ns:svc:port` (documented, seen in config_dump); `ns:svc:port:h2c` (or `:tcp`)
    when a route kind needs another protocol than the port's own, so that an
    HTTPRoute and a GRPCRoute to one Service port do not share (and switch) a cluster."""
    base = f"{name_part(namespace)}:{name_part(service)}:{port}"
    if protocol is None:
        return base
    return f"{base}:{_SUFFIXES.get(protocol, protocol.value)}"


@dataclass(frozen=True)
class Resolved:
    cluster: str | None
    reason: str = ""
    message: str = ""


@dataclass
class BackendProblems:
    """ResolvedRefs for one route: the first reason by rank, all messages."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, reason: str, message: str) -> None:
        if not reason:  # resolved but unusable (e.g. invalid BackendTLSPolicy): not a route problem
            return
        if (reason, message) not in self.items:
            self.items.append((reason, message))

    @property
    def reason(self) -> str:
        if not self.items:
            return c.R_RESOLVED_REFS
        return min((r for r, _ in self.items), key=_REASON_RANK.index)

    @property
    def message(self) -> str:
        if not self.items:
            return "All references are resolved"
        return "; ".join(m for _, m in self.items)


class Clusters:
    """Collects the clusters routes use, one per Service port."""

    def __init__(
        self,
        index: Index,
        tls_policies: BackendTLSPolicies | None = None,
        *,
        app_protocol: bool = True,
    ) -> None:
        self.index = index
        # False (gatewayAPI.enableAppProtocol off): every port is plain HTTP/1.1.
        self._app_protocol = app_protocol
        self._clusters: dict[str, Cluster] = {}
        self._tls_policies = tls_policies

    @property
    def tls_policies(self) -> BackendTLSPolicies:
        if self._tls_policies is None:
            self._tls_policies = BackendTLSPolicies(self.index)
        return self._tls_policies

    def resolve(
        self,
        ref: BackendObjectReference,
        *,
        route_kind: str,
        route_namespace: str,
        protocol: AppProtocol | None = None,
    ) -> Resolved:
        ns = ref.namespace or route_namespace
        what = f"{ref.kind} {ns}/{ref.name}"
        if ref.group != "" or ref.kind != "Service":
            return Resolved(
                None,
                c.R_INVALID_KIND,
                f"backend {ref.group or 'core'}/{ref.kind} {ref.name}: only Services are supported",
            )
        if not permitted(
            self.index,
            from_group=GATEWAY_GROUP,
            from_kind=route_kind,
            from_namespace=route_namespace,
            to_group="",
            to_kind="Service",
            to_namespace=ns,
            to_name=ref.name,
        ):
            return Resolved(
                None,
                c.R_REF_NOT_PERMITTED,
                f"backend {what}: cross-namespace reference not allowed by any ReferenceGrant",
            )
        svc = self.index.services.get((ns, ref.name))
        if svc is None:
            return Resolved(None, c.R_BACKEND_NOT_FOUND, f"backend {what} not found")
        # A Service may serve one port number over TCP and UDP (DNS): take the
        # route's transport first.
        transport = "UDP" if protocol is AppProtocol.UDP else "TCP"
        numbered = [p for p in svc.spec.ports if p.port == ref.port]
        port = next((p for p in numbered if p.protocol == transport), None) or next(
            iter(numbered), None
        )
        if port is None:
            return Resolved(None, c.R_BACKEND_NOT_FOUND, f"backend {what} has no port {ref.port}")
        if svc.spec.type == "ExternalName":
            return Resolved(
                None,
                c.R_UNSUPPORTED_PROTOCOL,
                f"backend {what}: ExternalName Services are not supported",
            )
        own = AppProtocol.HTTP1
        if self._app_protocol:
            own = APP_PROTOCOLS.get(port.app_protocol or "", AppProtocol.HTTP1)
        proto = protocol or own
        name = cluster_name(ns, ref.name, port.port, None if proto is own else proto)
        tls: UpstreamTLS | None = None
        if proto not in (AppProtocol.TCP, AppProtocol.UDP):
            # TLS passthrough carries the client's own TLS; TCPRoute/UDPRoute: no TLS.
            policy = self.tls_policies.for_port(ns, ref.name, port.name or "")
            if policy is not None and policy.tls is None:
                # Resolved, but its BackendTLSPolicy has no usable CA: answer 500 rather
                # than talk plaintext to a backend that wants TLS (policy status says why).
                return Resolved(None, "", f"backend {what}: {policy.key} has no valid CA")
            tls = policy.tls if policy is not None else None
        existing = self._clusters.get(name)
        if existing is not None and _PROTOCOL_RANK[existing.protocol] >= _PROTOCOL_RANK[proto]:
            return Resolved(name)
        self._clusters[name] = Cluster(
            name=name,
            endpoints=self._endpoints(svc, port),
            protocol=proto,
            tls=tls,
        )
        return Resolved(name)

    def _endpoints(self, svc: Service, port: ServicePort) -> tuple[Endpoint, ...]:
        wanted = port.name or ""
        out: set[Endpoint] = set()
        for eps in self.index.slices.get((svc.metadata.namespace, svc.metadata.name), []):
            if eps.address_type == "FQDN":
                continue
            slice_port = next((p for p in eps.ports if (p.name or "") == wanted), None)
            if slice_port is None or slice_port.port is None:
                continue
            for ep in eps.endpoints:
                if not ep.ready:
                    continue
                for addr in ep.addresses:
                    if is_ip_address(addr):  # Envoy rejects a socket address that is not an IP
                        out.add(Endpoint(addr, slice_port.port))
        return tuple(sorted(out, key=_endpoint_order))

    def weighted(self, name: str, shares: list[tuple[str | None, int]]) -> str:
        """A cluster `name` with one weighted group of endpoints per share (cluster name
        from `resolve`, None for an unresolved backend: an empty group), for Envoy's UDP
        proxy, which forwards to one cluster only."""
        groups = tuple(
            (weight, self._clusters[share].endpoints if share is not None else ())
            for share, weight in shares
        )
        self._clusters[name] = Cluster(
            name=name,
            endpoints=tuple(sorted({e for _, eps in groups for e in eps}, key=_endpoint_order)),
            protocol=AppProtocol.UDP,
            weighted=groups,
        )
        return name

    def clusters(self) -> tuple[Cluster, ...]:
        return tuple(self._clusters[k] for k in sorted(self._clusters))


def _endpoint_order(e: Endpoint) -> tuple[str, int]:
    return (e.address, e.port)
