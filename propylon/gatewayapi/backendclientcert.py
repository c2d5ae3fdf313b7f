"""Gateway `spec.tls.backend.clientCertificateRef`: the certificate the Gateway's proxy
presents to backends it reaches over TLS (those a BackendTLSPolicy governs).

- The ref must be a core Secret (`group: ""`, `kind: Secret`) with a PEM `tls.crt` and
  a matching `tls.key`: otherwise the Gateway is `ResolvedRefs=False/
  InvalidClientCertificateRef`. In another namespace it needs a ReferenceGrant from the
  Gateway (`RefNotPermitted` without one). A Gateway with an unusable ref still serves,
  presenting no certificate (its status says why).
- Clusters are shared by every Gateway whose routes use the Service port, so a Gateway
  with a certificate gets its own copy of each TLS cluster it uses, named
  `<cluster>/client/<gateway-namespace>/<gateway-name>`, and its listeners' routes are
  pointed at those copies; other Gateways keep the shared cluster. That rewrite costs
  in proportion to those Gateways' routes and happens only when one exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from propylon.gatewayapi import conditions as c
from propylon.gatewayapi.envoyrules import certificate_problem
from propylon.gatewayapi.index import Index
from propylon.gatewayapi.names import name_part
from propylon.gatewayapi.referencegrants import permitted
from propylon.model import (
    Cluster,
    Forward,
    Listener,
    Route,
    Secret,
    VirtualHost,
)
from propylon.resources import GATEWAY_GROUP, Gateway


def resolve_client_certificate(
    index: Index, gateway: Gateway
) -> tuple[Secret | None, tuple[str, str] | None]:
    """(the certificate, None) or (None, (ResolvedRefs reason, message)); (None, None)
    when the Gateway names no client certificate."""
    tls = gateway.spec.tls
    ref = tls.backend.client_certificate_ref if tls and tls.backend else None
    if ref is None:
        return None, None
    home = gateway.metadata.namespace
    ns = ref.namespace or home
    where = f"spec.tls.backend.clientCertificateRef ({ns}/{ref.name})"
    if ref.group != "" or ref.kind != "Secret":
        return None, (
            c.R_INVALID_CLIENT_CERTIFICATE_REF,
            f"{where}: unsupported kind {ref.group or 'core'}/{ref.kind}, only core/Secret",
        )
    if not permitted(
        index,
        from_group=GATEWAY_GROUP,
        from_kind="Gateway",
        from_namespace=home,
        to_group="",
        to_kind="Secret",
        to_namespace=ns,
        to_name=ref.name,
    ):
        return None, (
            c.R_REF_NOT_PERMITTED,
            f"{where}: cross-namespace reference not allowed by any ReferenceGrant",
        )
    secret = index.secrets.get((ns, ref.name))
    if secret is None:
        return None, (c.R_INVALID_CLIENT_CERTIFICATE_REF, f"{where}: Secret not found")
    crt, key = secret.decoded("tls.crt"), secret.decoded("tls.key")
    if not crt or not key:
        return None, (
            c.R_INVALID_CLIENT_CERTIFICATE_REF,
            f"{where}: the Secret has no tls.crt and tls.key",
        )
    problem = certificate_problem(crt, key)
    if problem is not None:
        return None, (c.R_INVALID_CLIENT_CERTIFICATE_REF, f"{where}: {problem}")
    return Secret(f"{name_part(ns)}/{name_part(ref.name)}", crt.decode(), key.decode()), None


def listener_prefix(gateway: Gateway) -> str:
    """What the names of the Gateway's model Listeners start with."""
    return f"{name_part(gateway.metadata.namespace)}/{name_part(gateway.metadata.name)}/"


def client_cluster_name(cluster: str, gateway: Gateway) -> str:
    meta = gateway.metadata
    return f"{cluster}/client/{name_part(meta.namespace)}/{name_part(meta.name)}"


class _Rewriter:
    """One Gateway's rewrite: its routes to its own copies of the TLS clusters."""

    def __init__(self, gateway: Gateway, secret: str, tls_clusters: Mapping[str, Cluster]):
        self.gateway = gateway
        self.secret = secret
        self.tls_clusters = tls_clusters
        self.used: dict[str, Cluster] = {}
        self._routes: dict[int, Route] = {}

    def cluster(self, name: str | None) -> str | None:
        shared = self.tls_clusters.get(name or "")
        if shared is None or shared.tls is None:
            return name
        own = client_cluster_name(shared.name, self.gateway)
        if own not in self.used:
            tls = replace(shared.tls, client_certificate=self.secret)
            self.used[own] = replace(shared, name=own, tls=tls)
        return own

    def route(self, route: Route) -> Route:
        done = self._routes.get(id(route))
        if done is not None:
            return done
        action = route.action
        if isinstance(action, Forward):
            action = Forward(
                tuple(
                    replace(b, cluster=self.cluster(b.cluster))
                    if b.cluster in self.tls_clusters
                    else b
                    for b in action.backends
                )
            )
        mirrors = tuple(
            replace(m, cluster=self.cluster(m.cluster) or m.cluster)
            if m.cluster in self.tls_clusters
            else m
            for m in route.mirrors
        )
        out = (
            route
            if action == route.action and mirrors == route.mirrors
            else replace(route, action=action, mirrors=mirrors)
        )
        self._routes[id(route)] = out
        return out

    def hosts(self, hosts: tuple[VirtualHost, ...]) -> tuple[VirtualHost, ...]:
        out = []
        for vh in hosts:
            routes = tuple(self.route(r) for r in vh.routes)
            same = all(a is b for a, b in zip(routes, vh.routes, strict=True))
            out.append(vh if same else replace(vh, routes=routes))
        return tuple(out)

    def listener(self, lst: Listener) -> Listener:
        http = self.hosts(lst.http) if lst.http is not None else None
        https = tuple(replace(t, virtual_hosts=self.hosts(t.virtual_hosts)) for t in lst.https)
        return replace(lst, http=http, https=https)


def present_client_certificates(
    listeners: Iterable[Listener],
    clusters: tuple[Cluster, ...],
    certificates: Mapping[str, tuple[Gateway, str]],
) -> tuple[tuple[Listener, ...], tuple[Cluster, ...]] | None:
    """`certificates`: listener name prefix (`listener_prefix`) -> (Gateway, the Secret
    name it presents). The listeners with their routes pointed at the Gateways' own
    TLS clusters, and the clusters with those copies added (sorted by name); None when
    nothing changes."""
    tls_clusters = {cl.name: cl for cl in clusters if cl.tls is not None}
    if not certificates or not tls_clusters:
        return None
    rewriters: dict[str, _Rewriter] = {}
    out: list[Listener] = []
    for lst in listeners:
        # `<namespace>/<gateway>/<port>[/udp]`: names hold no other "/".
        prefix = "/".join(lst.name.split("/")[:2]) + "/"
        entry = certificates.get(prefix)
        if entry is None:
            out.append(lst)
            continue
        rewriter = rewriters.get(prefix)
        if rewriter is None:
            rewriter = rewriters[prefix] = _Rewriter(entry[0], entry[1], tls_clusters)
        out.append(rewriter.listener(lst))
    added = {name: cl for rw in rewriters.values() for name, cl in rw.used.items()}
    if not added:
        return None
    merged = {cl.name: cl for cl in clusters} | added
    return tuple(out), tuple(merged[k] for k in sorted(merged))
