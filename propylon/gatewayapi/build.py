"""`build`: the whole Gateway API pass, from input objects to statuses and the model."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from propylon.gatewayapi import conditions as c
from propylon.gatewayapi.addresses import allocate, pools_from
from propylon.gatewayapi.assemble import assemble_listeners
from propylon.gatewayapi.backends import _PROTOCOL_RANK, BackendProblems, Clusters
from propylon.gatewayapi.backendtlspolicy import BackendTLSPolicies
from propylon.gatewayapi.gateway import GatewayState, evaluate_gateway
from propylon.gatewayapi.gatewayclass import class_status, evaluate_classes
from propylon.gatewayapi.index import Index, NsName, age_key
from propylon.gatewayapi.inputs import BuildResult, Diagnostic, Inputs
from propylon.gatewayapi.listeners import evaluate_listeners
from propylon.gatewayapi.routes import AnyRoute, Attachment, ParentResult, attach_route
from propylon.gatewayapi.rules import (
    OrderedRoute,
    grpc_routes,
    http_routes,
    tls_backends,
    unsupported_filters,
)
from propylon.model import Cluster, Listener, Model, Secret, WeightedBackend
from propylon.resources import GRPCRoute, HTTPRoute, ObjectKey, Service, TLSRoute


def build(inputs: Inputs) -> BuildResult:
    """The whole pass, from scratch. `Builder` (propylon.gatewayapi.incremental) gives the
    same result while reusing the unchanged routes of its previous build."""
    index = Index(inputs.objects)
    world = evaluate_world(index, inputs)
    tls_policies = BackendTLSPolicies(index)
    outcomes = [
        evaluate_route(index, world.gateways, route, tls_policies)
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


def evaluate_world(index: Index, inputs: Inputs) -> World:
    statuses: dict[ObjectKey, dict[str, Any]] = {}
    diagnostics: list[Diagnostic] = []

    classes = evaluate_classes(index)
    for cls in classes.values():
        statuses[cls.gateway_class.key] = class_status(cls)

    # Gateways of our classes, in allocation order (oldest first).
    gateways: dict[NsName, GatewayState] = {}
    for gw in sorted(index.gateways.values(), key=age_key):
        gw_class = classes.get(gw.spec.gateway_class_name)
        if gw_class is None:
            continue
        state = GatewayState(gw, gw_class, evaluate_listeners(index, gw, inputs.values))
        evaluate_gateway(state)
        diagnostics.extend(state.diagnostics)
        gateways[(gw.metadata.namespace, gw.metadata.name)] = state

    requests = [s.address_request for s in gateways.values() if s.address_request is not None]
    allocations = allocate(
        requests,
        pools_from(index.ip_pools, inputs.default_pool),
        inputs.previous_addresses,
        unbindable=inputs.unbindable_addresses,
    )
    for state in gateways.values():
        state.allocation = allocations.get(state.gateway.key)
    return World(statuses, gateways, diagnostics)


def all_routes(index: Index) -> list[AnyRoute]:
    return [*index.http_routes.values(), *index.grpc_routes.values(), *index.tls_routes.values()]


@dataclass(frozen=True)
class RouteOutcome:
    """One route's share of a build: what `finish` needs from it, nothing it shares."""

    key: ObjectKey
    attached: tuple[Attachment, ...]
    ordered: list[OrderedRoute] | None  # HTTPRoute, GRPCRoute
    passthrough: tuple[WeightedBackend, ...] | None  # TLSRoute
    clusters: tuple[Cluster, ...]  # what it adds to the model (attached routes only)
    status: dict[str, Any]


def evaluate_route(
    index: Index,
    gateways: dict[NsName, GatewayState],
    route: AnyRoute,
    tls_policies: BackendTLSPolicies,
) -> RouteOutcome | None:
    """Attachment, then rules -> model routes; None for a route that is not ours."""
    parents, attached = attach_route(index, gateways, route)
    if not parents:
        return None
    unsupported = [] if isinstance(route, TLSRoute) else unsupported_filters(route)
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
    collector = Clusters(index, tls_policies)
    ordered: list[OrderedRoute] | None = None
    passthrough: tuple[WeightedBackend, ...] | None = None
    if isinstance(route, HTTPRoute):
        ordered = http_routes(route, collector, problems)
    elif isinstance(route, GRPCRoute):
        ordered = grpc_routes(route, collector, problems)
    else:
        passthrough = tls_backends(route, collector, problems)
    # BackendTLSPolicies of the Service ports just resolved get these Gateways as ancestors
    tls_policies.record_ancestors({att.listener.gateway.key for att in attached})
    return RouteOutcome(
        key=route.key,
        attached=tuple(attached),
        ordered=ordered,
        passthrough=passthrough,
        clusters=collector.clusters() if attached else (),
        status=_route_status(route, parents, problems),
    )


def add_cluster(clusters: dict[str, Cluster], cluster: Cluster) -> None:
    """Several routes share a cluster: it takes the strongest protocol requirement (the
    first one seen among equals), as `Clusters.resolve` does within one collector."""
    existing = clusters.get(cluster.name)
    if existing is None or _PROTOCOL_RANK[existing.protocol] < _PROTOCOL_RANK[cluster.protocol]:
        clusters[cluster.name] = cluster


def finish(
    world: World,
    outcomes: Iterable[RouteOutcome | None],
    tls_policies: BackendTLSPolicies,
) -> BuildResult:
    """Routes (in key order) + Gateways -> statuses, generated Services and the model."""
    statuses: dict[ObjectKey, dict[str, Any]] = dict(world.statuses)
    gateways = world.gateways
    for state in gateways.values():
        for li in state.listeners:
            li.attached_routes.clear()  # a reused World counts again
    clusters: dict[str, Cluster] = {}
    attachments: list[Attachment] = []
    ordered: dict[ObjectKey, list[OrderedRoute]] = {}
    passthrough: dict[ObjectKey, tuple[WeightedBackend, ...]] = {}
    for outcome in outcomes:
        if outcome is None:
            continue
        key = outcome.key
        if outcome.ordered is not None:
            ordered[key] = outcome.ordered
        if outcome.passthrough is not None:
            passthrough[key] = outcome.passthrough
        for att in outcome.attached:
            att.listener.attached_routes.add(key)
        attachments.extend(outcome.attached)
        for cluster in outcome.clusters:
            add_cluster(clusters, cluster)
        statuses[key] = outcome.status

    statuses.update(tls_policies.statuses())

    listeners: list[Listener] = []
    secrets: dict[str, Secret] = {}
    services: list[Service] = []
    addresses: dict[ObjectKey, str] = {}
    for gw_name in sorted(gateways):
        state = gateways[gw_name]
        statuses[state.gateway.key] = state.status()
        if state.class_state.accepted:
            services.append(state.generated_service())
        if state.address is not None:
            addresses[state.gateway.key] = state.address
        gw_listeners, gw_secrets = assemble_listeners(state, attachments, ordered, passthrough)
        listeners.extend(gw_listeners)
        for s in gw_secrets:
            secrets[s.name] = s

    model = Model(
        listeners=tuple(listeners),
        clusters=tuple(clusters[k] for k in sorted(clusters)),
        secrets=tuple(secrets[k] for k in sorted(secrets)),
    )
    return BuildResult(
        statuses=dict(sorted(statuses.items())),
        services=tuple(services),
        addresses=addresses,
        model=model,
        diagnostics=tuple(world.diagnostics),
    )


def _route_status(
    route: AnyRoute, parents: list[ParentResult], problems: BackendProblems
) -> dict[str, Any]:
    gen = route.metadata.generation
    return {
        "parents": [p.status(gen, problems.reason, problems.message) for p in parents],
    }
