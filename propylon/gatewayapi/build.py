"""`build`: the whole Gateway API pass, from input objects to statuses and the model."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from immutables import Map

from propylon.gatewayapi import conditions as c
from propylon.gatewayapi.addresses import allocate, pools_from
from propylon.gatewayapi.assemble import GatewayAssembly, VirtualHostDelta
from propylon.gatewayapi.backendclientcert import (
    listener_prefix,
    present_client_certificates,
    resolve_client_certificate,
)
from propylon.gatewayapi.backends import _PROTOCOL_RANK, BackendProblems, Clusters
from propylon.gatewayapi.backendtlspolicy import BackendTLSPolicies
from propylon.gatewayapi.classconfig import config_status
from propylon.gatewayapi.envoyrules import route_problems
from propylon.gatewayapi.gateway import GatewayState, evaluate_gateway
from propylon.gatewayapi.gatewayclass import class_status, evaluate_classes
from propylon.gatewayapi.hostnetwork import node_addresses, node_allocation
from propylon.gatewayapi.index import Index, NsName, age_key
from propylon.gatewayapi.inputs import BuildResult, Inputs
from propylon.gatewayapi.listeners import evaluate_listeners, mark_host_port_conflicts
from propylon.gatewayapi.listenersets import ListenerSetState, attach_listener_sets
from propylon.gatewayapi.nodeport import (
    anchor_address,
    node_port_allocation,
    ready_node_addresses,
    service_type,
)
from propylon.gatewayapi.routes import (
    AnyRoute,
    Attachment,
    StreamRoute,
    attach_route,
)
from propylon.gatewayapi.rules import (
    OrderedRoute,
    grpc_routes,
    http_routes,
    stream_backends,
    tls_backends,
    unsupported_filters,
)
from propylon.gatewayapi.sharedkeys import KeyOrSet, add_key, remove_key
from propylon.gatewayapi.statusparts import StatusParts
from propylon.model import Cluster, Delta, Listener, Model, Secret, Stamp, WeightedBackend
from propylon.persistent import PersistentMap
from propylon.resources import GRPCRoute, HTTPRoute, ObjectKey, Service, TLSRoute
from propylon.store.diagnostics import Diagnostic, warning


def build(inputs: Inputs) -> BuildResult:
    """The whole pass, from scratch. `Builder` (propylon.gatewayapi.incremental) gives the
    same result while reusing the unchanged routes of its previous build."""
    index = Index(inputs.objects)
    world = evaluate_world(index, inputs)
    tls_policies = BackendTLSPolicies(index)
    outcomes = [
        evaluate_route(
            index,
            world.gateways,
            route,
            tls_policies,
            world.listener_sets,
            app_protocol=world.app_protocol,
            status_parts=world.status_parts,
        )
        for route in sorted(all_routes(index), key=lambda r: r.key)
    ]
    return finish(world, outcomes, tls_policies)


@dataclass
class World:
    """What every route reads and no route changes: GatewayClasses, Gateways (listeners,
    addresses). Only the listeners' `attached_routes` depend on routes (see `finish`)."""

    statuses: dict[ObjectKey, dict[str, Any]]  # GatewayClasses
    gateways: dict[NsName, GatewayState]
    diagnostics: list[Diagnostic]
    listener_sets: dict[ObjectKey, ListenerSetState] = field(default_factory=dict)
    # gatewayAPI.enableAppProtocol (or enableAlpn): Service ports' appProtocol counts.
    app_protocol: bool = True
    # gatewayAPI.hostNetwork.enabled: no generated Services.
    host_network: bool = False
    # Route statuses shared by the routes that have the same one (they name this
    # World's Gateways).
    status_parts: StatusParts = field(default_factory=StatusParts)


def evaluate_world(index: Index, inputs: Inputs) -> World:
    statuses: dict[ObjectKey, dict[str, Any]] = {}
    diagnostics: list[Diagnostic] = []

    classes = evaluate_classes(index, inputs.refused_class_configs)
    for cls in classes.values():
        statuses[cls.gateway_class.key] = class_status(
            cls, app_protocol=inputs.values.gateway_api.app_protocol
        )
    for _, config in sorted(index.class_configs.items()):
        statuses[config.key] = config_status(config.metadata.generation)
    for key, (generation, problem) in sorted(inputs.refused_class_configs.items()):
        statuses[key] = config_status(generation, problem)

    # Gateways of our classes, in allocation order (oldest first).
    gateways: dict[NsName, GatewayState] = {}
    for gw in sorted(index.gateways.values(), key=age_key):
        gw_class = classes.get(gw.spec.gateway_class_name)
        if gw_class is None:
            continue
        state = GatewayState(
            gw,
            gw_class,
            evaluate_listeners(index, gw, inputs.values),
            default_traffic_policy=inputs.values.gateway_api.external_traffic_policy,
        )
        evaluate_gateway(state)
        state.backend_certificate, state.backend_problem = resolve_client_certificate(index, gw)
        diagnostics.extend(state.diagnostics)
        gateways[(gw.metadata.namespace, gw.metadata.name)] = state
    listener_sets = attach_listener_sets(index, gateways, inputs.values)

    if inputs.values.gateway_api.host_network.enabled:
        mark_host_port_conflicts((s.accepted, s.listeners) for s in gateways.values())

    host = inputs.values.gateway_api.host_network
    on_nodes = node_addresses(index, host.nodes.match_labels) if host.enabled else None
    if on_nodes is not None:
        # The selected nodes' addresses, for every Gateway (Kubernetes: Nodes are known).
        for state in gateways.values():
            if state.accepted:
                state.allocation = node_allocation(on_nodes, host.nodes.match_labels)
                state.host_addresses = on_nodes
    else:
        if inputs.kubernetes:
            diagnostics.extend(_serve_on_node_ports(index, inputs, gateways))
        requests = [s.address_request for s in gateways.values() if s.address_request is not None]
        allocations = allocate(
            requests,
            pools_from(index.ip_pools, inputs.default_pool),
            inputs.previous_addresses,
            unbindable=inputs.unbindable_addresses,
            assign=inputs.assign_addresses,
        )
        for state in gateways.values():
            if state.address_request is not None:
                state.allocation = allocations.get(state.gateway.key)
    return World(
        statuses,
        gateways,
        diagnostics,
        listener_sets,
        inputs.values.gateway_api.app_protocol,
        host.enabled,
    )


def _serve_on_node_ports(
    index: Index, inputs: Inputs, gateways: dict[NsName, GatewayState]
) -> list[Diagnostic]:
    """Gateways whose Service is NodePort or ClusterIP leave LB-IPAM (no address request)
    and get their addresses from `gatewayapi.nodeport`. Only the operator watches Nodes
    (and writes status): an agent just serves them."""
    nodes = ready_node_addresses(index) if inputs.assign_addresses else None
    anchors: set[str] = set()
    found: list[Diagnostic] = []
    for state in gateways.values():
        if not state.accepted or service_type(state) == "LoadBalancer":
            continue
        gw = state.gateway
        request = state.address_request
        if request is not None and request.wanted and not request.require_all:
            found.append(
                warning(
                    "the lb-ipam annotation is ignored: LB-IPAM allocates for LoadBalancer "
                    f"Services only (service.type {service_type(state)})",
                    object=str(gw.key),
                    field="spec.infrastructure.annotations",
                )
            )
        state.address_request = None
        anchor = anchor_address(gw.metadata.namespace, gw.metadata.name, anchors)
        state.allocation, state.host_addresses = node_port_allocation(state, nodes, anchor)
    return found


def all_routes(index: Index) -> list[AnyRoute]:
    return [
        *index.http_routes.values(),
        *index.grpc_routes.values(),
        *index.tls_routes.values(),
        *index.tcp_routes.values(),
        *index.udp_routes.values(),
    ]


@dataclass(frozen=True, slots=True)
class RouteOutcome:
    """One route's share of a build: what `finish` needs from it, nothing it shares."""

    key: ObjectKey
    attached: tuple[Attachment, ...]
    ordered: list[OrderedRoute] | None  # HTTPRoute, GRPCRoute
    passthrough: tuple[WeightedBackend, ...] | None  # TLSRoute, TCPRoute, UDPRoute
    clusters: tuple[Cluster, ...]  # what it adds to the model (attached routes only)
    status: dict[str, Any]


def evaluate_route(
    index: Index,
    gateways: dict[NsName, GatewayState],
    route: AnyRoute,
    tls_policies: BackendTLSPolicies,
    listener_sets: dict[ObjectKey, ListenerSetState] | None = None,
    *,
    app_protocol: bool = True,
    status_parts: StatusParts | None = None,
    key: ObjectKey | None = None,
) -> RouteOutcome | None:
    """Attachment, then rules -> model routes; None for a route that is not ours.
    `app_protocol`: whether Service ports' appProtocol chooses the backend protocol.
    `status_parts`: where routes with the same status share it (the World's).
    `key`: the route's key as the caller holds it (kept in the outcome: no second
    ObjectKey per route)."""
    parents, attached = attach_route(index, gateways, route, listener_sets)
    if not parents:
        return None
    unsupported: list[str] = []
    if isinstance(route, HTTPRoute | GRPCRoute):
        unsupported = unsupported_filters(route)
        # What Envoy would reject never reaches it: the route is not accepted, and says why.
        unsupported += route_problems(route)
    elif isinstance(route, TLSRoute):
        unsupported = route_problems(route)
    if unsupported:
        for p in parents:
            if p.accepted:
                p.accepted, p.reason, p.message = (
                    False,
                    c.R_UNSUPPORTED_VALUE,
                    "; ".join(unsupported),
                )
        attached = []
    problems = BackendProblems()
    # A collector of its own per route (merged by `finish`), so a route's share can be
    # reused on its own by the incremental Builder.
    collector = Clusters(index, tls_policies, app_protocol=app_protocol)
    ordered: list[OrderedRoute] | None = None
    passthrough: tuple[WeightedBackend, ...] | None = None
    if isinstance(route, HTTPRoute):
        ordered = http_routes(route, collector, problems)
    elif isinstance(route, GRPCRoute):
        ordered = grpc_routes(route, collector, problems)
    elif isinstance(route, TLSRoute):
        passthrough = tls_backends(route, collector, problems)
    else:
        passthrough = stream_backends(route, collector, problems)
    # BackendTLSPolicies of the Service ports just resolved get these Gateways as ancestors
    tls_policies.record_ancestors({att.listener.gateway.key for att in attached})
    return RouteOutcome(
        key=route.key if key is None else key,
        attached=tuple(attached),
        ordered=ordered,
        passthrough=passthrough,
        clusters=collector.clusters() if attached else (),
        status=(status_parts or StatusParts()).route_status(
            parents, route.metadata.generation, problems.reason, problems.message
        ),
    )


def add_cluster(clusters: dict[str, Cluster], cluster: Cluster) -> None:
    """Several routes share a cluster: it takes the strongest protocol requirement (the
    first one seen among equals), as `Clusters.resolve` does within one collector."""
    existing = clusters.get(cluster.name)
    if existing is None or _PROTOCOL_RANK[existing.protocol] < _PROTOCOL_RANK[cluster.protocol]:
        clusters[cluster.name] = cluster


def _beats(cluster: Cluster, key: ObjectKey, winner: tuple[Cluster, ObjectKey]) -> bool:
    """Whether route `key`'s cluster wins over the current winner: a stronger protocol
    requirement, or an equal one from a route earlier in key order (as `add_cluster`
    over the routes in key order would decide)."""
    rank, best = _PROTOCOL_RANK[cluster.protocol], _PROTOCOL_RANK[winner[0].protocol]
    return rank > best or (rank == best and key < winner[1])


def finish(
    world: World,
    outcomes: Iterable[RouteOutcome | None],
    tls_policies: BackendTLSPolicies,
) -> BuildResult:
    """Routes (in key order) + Gateways -> statuses, generated Services and the model."""
    finisher = Finisher(world)
    finisher.update(((o.key, o) for o in outcomes if o is not None), tls_policies)
    return finisher.result(tls_policies)


class Finisher:
    """`finish` with memory, for one World: `update` takes the routes whose outcome
    changed (in any order), `result` gives what `finish` would give for all current
    outcomes, at a cost in proportion to the change (plus the Gateways): listeners'
    attached routes, merged clusters, virtual hosts (`GatewayAssembly`) and the
    statuses are patched, not rebuilt. Unchanged parts keep their identity, and each
    model after the first says what changed since the previous one (`Model.delta`).

    The first result's statuses are a dict sorted by key; later ones are the previous
    result's patched, as a persistent map (in no particular order; writers sort):
    sorting thousands of keys per change cost more than the rest of a one-route change,
    and a dict copy per change ~1 ms at 50 000 routes."""

    def __init__(self, world: World) -> None:
        self.world = world
        for state in world.gateways.values():
            for li in state.listeners:
                li.attached_routes.clear()  # a reused World counts again
        self.outcomes: dict[ObjectKey, RouteOutcome] = {}
        self.ordered: dict[ObjectKey, list[OrderedRoute]] = {}
        self.passthrough: dict[ObjectKey, tuple[WeightedBackend, ...]] = {}
        self.tls_attachments: dict[ObjectKey, tuple[Attachment, ...]] = {}
        self.assemblies = {name: GatewayAssembly(state) for name, state in world.gateways.items()}
        # cluster name -> the routes whose outcome has clusters of this name: one key, or
        # a set of two or more (a dict and a list per cluster name was 1.6 MiB at 5000
        # routes); their clusters are in `outcomes` (`_feed`)
        self.cluster_feeds: dict[str, KeyOrSet] = {}
        # cluster name -> the route whose cluster won the merge (`_merge_cluster`)
        self.cluster_winners: dict[str, ObjectKey] = {}
        self.clusters: dict[str, Cluster] = {}
        self.cluster_names: list[str] = []  # sorted
        self.cluster_list: list[Cluster] = []  # alongside `cluster_names`
        self.cluster_tuple: tuple[Cluster, ...] | None = None
        # The last model had clusters copied for Gateways' backend client certificates
        # (`backendclientcert`): a hint relative to it would not name those.
        self.rewrote_last = False
        # cluster name -> the merged cluster now (None: gone), since the last model
        self.cluster_changes: dict[str, Cluster | None] = {}
        self.statuses: dict[ObjectKey, dict[str, Any]] = dict(world.statuses)
        self.changed_statuses: set[ObjectKey] = set()
        self.last: Mapping[ObjectKey, dict[str, Any]] | None = None  # statuses given last
        self.last_map: Map[ObjectKey, dict[str, Any]] = Map()  # the same, to patch
        self.stamp: Stamp | None = None  # of the last model
        # ListenerSets whose listeners' attached routes changed since the last result
        # (None: all): the only part of their status a route changes. Thousands of
        # ListenerSets made every route change cost O(ListenerSets) otherwise.
        self.listener_sets_changed: set[ObjectKey] | None = None

    def update(
        self,
        changes: Iterable[tuple[ObjectKey, RouteOutcome | None]],
        tls_policies: BackendTLSPolicies,
    ) -> None:
        """New outcomes for some routes (None: the route is gone or not ours)."""
        pairs = [(key, self.outcomes.get(key), new) for key, new in changes]
        names: set[str] = set()
        added: dict[str, list[ObjectKey]] = {}  # name -> routes that feed it anew
        recompute: set[str] = set()  # names whose winning route left or changed
        for key, old, _ in pairs:  # take every old share away first ...
            if old is None:
                continue
            for att in old.attached:
                att.listener.attached_routes.discard(key)
                self._listener_set_changed(att)
            if old.ordered is not None:
                for assembly in self.assemblies.values():
                    for att in old.attached:
                        assembly.count(att, -1, key)
            for cluster in old.clusters:
                names.add(cluster.name)
                self._unfeed(cluster.name, key)
                if self.cluster_winners.get(cluster.name) == key:
                    recompute.add(cluster.name)
            del self.outcomes[key]
            self.ordered.pop(key, None)
            self.passthrough.pop(key, None)
            self.tls_attachments.pop(key, None)
        for key, _, new in pairs:  # ... then add the new ones
            if new is None:
                continue
            self.outcomes[key] = new
            if new.ordered is not None:
                self.ordered[key] = new.ordered
            if new.passthrough is not None:
                self.passthrough[key] = new.passthrough
            for att in new.attached:
                att.listener.attached_routes.add(key)
                self._listener_set_changed(att)
            if new.ordered is not None:
                for assembly in self.assemblies.values():
                    for att in new.attached:
                        assembly.count(att, 1, key)
            # TLS passthrough, TCP and UDP listeners take one route per hostname or
            # listener: the assembly reads their attachments.
            tls = tuple(a for a in new.attached if isinstance(a.route, TLSRoute | StreamRoute))
            if tls:
                self.tls_attachments[key] = tls
            for cluster in new.clusters:
                names.add(cluster.name)
                if self._add_feed(cluster.name, key):
                    added.setdefault(cluster.name, []).append(key)
        for key, _, new in pairs:
            self._set_status(key, None if new is None else new.status)
        for name in names:
            if name in recompute or name not in self.clusters:
                self._merge_cluster(name)
            else:
                # The winner stays in: only the new feeds can beat it. Re-merging every
                # feed cost O(routes) per change for a Service that thousands of routes
                # share (BENCHMARKS.md, "Kubernetes mode").
                self._merge_added(name, added.get(name, ()))

    def _listener_set_changed(self, att: Attachment) -> None:
        owner = att.listener.owner
        if owner is not None and self.listener_sets_changed is not None:
            self.listener_sets_changed.add(owner.key)

    def _set_status(self, key: ObjectKey, status: dict[str, Any] | None) -> None:
        if status is None:
            self.statuses.pop(key, None)
        else:
            self.statuses[key] = status
        self.changed_statuses.add(key)

    def _merge_cluster(self, name: str) -> None:
        """Several routes share a cluster: it takes the strongest protocol requirement,
        the first one seen (in route key order) among equals."""
        feeds = self.cluster_feeds.get(name)
        merged: dict[str, Cluster] = {}
        winner: tuple[Cluster, ObjectKey] | None = None
        self.cluster_winners.pop(name, None)
        keys = () if feeds is None else sorted(feeds) if isinstance(feeds, set) else (feeds,)
        for key in keys:
            merged.pop(name, None)
            for cluster in self._feed(name, key):
                add_cluster(merged, cluster)
            if name in merged and (winner is None or _beats(merged[name], key, winner)):
                winner = (merged[name], key)
        self._set_cluster(name, winner)

    def _merge_added(self, name: str, keys: Iterable[ObjectKey]) -> None:
        """`_merge_cluster` when only `keys` are new feeds and the winner's stays."""
        winner = (self.clusters[name], self.cluster_winners[name])
        for key in keys:
            merged: dict[str, Cluster] = {}
            for cluster in self._feed(name, key):
                add_cluster(merged, cluster)
            if name in merged and _beats(merged[name], key, winner):
                winner = (merged[name], key)
        self._set_cluster(name, winner)

    def _add_feed(self, name: str, key: ObjectKey) -> bool:
        """Note that route `key` feeds cluster `name`; whether it did not already."""
        return add_key(self.cluster_feeds, name, key)

    def _unfeed(self, name: str, key: ObjectKey) -> None:
        remove_key(self.cluster_feeds, name, key)

    def _feed(self, name: str, key: ObjectKey) -> Iterator[Cluster]:
        """Route `key`'s clusters named `name`, in its order."""
        return (c for c in self.outcomes[key].clusters if c.name == name)

    def _set_cluster(self, name: str, winner: tuple[Cluster, ObjectKey] | None) -> None:
        before = self.clusters.get(name)
        after = None if winner is None else winner[0]
        if winner is not None:
            self.cluster_winners[name] = winner[1]
        if after is None:
            self.cluster_feeds.pop(name, None)
            if before is not None:
                del self.clusters[name]
                at = bisect_left(self.cluster_names, name)
                del self.cluster_names[at], self.cluster_list[at]
                self.cluster_tuple = None
                self.cluster_changes[name] = None
            return
        if before is not after:
            at = bisect_left(self.cluster_names, name)
            if before is None:
                self.cluster_names.insert(at, name)
                self.cluster_list.insert(at, after)
            else:
                self.cluster_list[at] = after
            self.clusters[name] = after
            self.cluster_tuple = None
            self.cluster_changes[name] = after

    def result(self, tls_policies: BackendTLSPolicies) -> BuildResult:
        gateways = self.world.gateways
        extra = tls_policies.statuses()
        gateway_statuses = {state.gateway.key: state.status() for state in gateways.values()}
        listener_sets = self.world.listener_sets
        changed_sets = (
            listener_sets if self.listener_sets_changed is None else (self.listener_sets_changed)
        )
        for key in changed_sets:
            gateway_statuses[key] = listener_sets[key].status()
        self.listener_sets_changed = set()
        for key, status in (*extra.items(), *gateway_statuses.items()):
            self.statuses[key] = status
            self.changed_statuses.add(key)
        since = self.last
        statuses: Mapping[ObjectKey, dict[str, Any]]
        if since is None:
            statuses = {k: self.statuses[k] for k in sorted(self.statuses)}
            self.last_map = Map(statuses)  # at start-up, not on the first change
        else:
            with self.last_map.mutate() as patch:
                for key in self.changed_statuses:
                    now = self.statuses.get(key)
                    if now is None:
                        patch.pop(key, None)
                    else:
                        patch[key] = now
                self.last_map = patch.finish()
            statuses = PersistentMap.of(self.last_map)
        changed = frozenset(self.changed_statuses) if since is not None else None
        self.changed_statuses.clear()
        self.last = statuses

        tls_attachments = [
            a for key in sorted(self.tls_attachments) for a in self.tls_attachments[key]
        ]
        listeners: list[Listener] = []
        secrets: dict[str, Secret] = {}
        services: list[Service] = []
        addresses: dict[ObjectKey, str] = {}
        vhost_changes = VirtualHostDelta()
        for gw_name in sorted(gateways):
            state = gateways[gw_name]
            # hostNetwork: the listeners are on the nodes' own ports, no Service in front.
            if state.class_state.accepted and not self.world.host_network:
                services.append(state.generated_service())
            if state.address is not None:
                addresses[state.gateway.key] = state.address
            gw_listeners, gw_secrets = self.assemblies[gw_name].listeners(
                tls_attachments, self.ordered, self.passthrough, vhost_changes
            )
            listeners.extend(gw_listeners)
            for s in gw_secrets:
                secrets[s.name] = s

        if self.cluster_tuple is None:
            self.cluster_tuple = tuple(self.cluster_list)
        delta = None
        if self.stamp is not None and not vhost_changes.ambiguous:
            delta = Delta(self.stamp, self.cluster_changes, vhost_changes.sets)
        self.cluster_changes = {}
        model_listeners, model_clusters = tuple(listeners), self.cluster_tuple
        client_certs = {
            listener_prefix(st.gateway): (st.gateway, st.backend_certificate.name)
            for st in gateways.values()
            if st.backend_certificate is not None and st.address is not None
        }
        if self.rewrote_last:
            delta = None
        self.rewrote_last = False
        if client_certs:
            for st in gateways.values():
                if st.backend_certificate is not None and st.address is not None:
                    secrets[st.backend_certificate.name] = st.backend_certificate
            rewritten = present_client_certificates(model_listeners, model_clusters, client_certs)
            if rewritten is not None:
                # The Gateways' own cluster copies: the hint does not describe them.
                model_listeners, model_clusters = rewritten
                delta = None
                self.rewrote_last = True
        model = Model(
            listeners=model_listeners,
            clusters=model_clusters,
            secrets=tuple(secrets[k] for k in sorted(secrets)),
            stamp=Stamp(),
            delta=delta,
        )
        self.stamp = model.stamp
        return BuildResult(
            statuses=statuses,  # never changed afterwards: the next result copies it
            services=tuple(services),
            addresses=addresses,
            model=model,
            diagnostics=tuple(self.world.diagnostics),
            changed=changed,
            since=since,
        )
