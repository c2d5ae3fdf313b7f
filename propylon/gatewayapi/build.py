"""`build`: the whole Gateway API pass, from input objects to statuses and the model."""

from __future__ import annotations

from typing import Any

from propylon.gatewayapi import conditions as c
from propylon.gatewayapi.addresses import allocate, pools_from
from propylon.gatewayapi.assemble import assemble_listeners
from propylon.gatewayapi.backends import BackendProblems, Clusters
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
from propylon.model import Listener, Model, Secret, WeightedBackend
from propylon.resources import GRPCRoute, HTTPRoute, ObjectKey, Service, TLSRoute


def build(inputs: Inputs) -> BuildResult:
    index = Index(inputs.objects)
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

    # Routes: attachment, then rules -> model routes (clusters only for attached routes).
    clusters = Clusters(index)
    attachments: list[Attachment] = []
    ordered: dict[ObjectKey, list[OrderedRoute]] = {}
    passthrough: dict[ObjectKey, tuple[WeightedBackend, ...]] = {}
    all_routes: list[AnyRoute] = [
        *index.http_routes.values(),
        *index.grpc_routes.values(),
        *index.tls_routes.values(),
    ]
    for route in sorted(all_routes, key=lambda r: r.key):
        parents, attached = attach_route(index, gateways, route)
        if not parents:
            continue
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
        collector = clusters if attached else Clusters(index)
        if isinstance(route, HTTPRoute):
            ordered[route.key] = http_routes(route, collector, problems)
        elif isinstance(route, GRPCRoute):
            ordered[route.key] = grpc_routes(route, collector, problems)
        else:
            passthrough[route.key] = tls_backends(route, collector, problems)
        for att in attached:
            att.listener.attached_routes.add(route.key)
        attachments.extend(attached)
        statuses[route.key] = _route_status(route, parents, problems)

    listeners: list[Listener] = []
    secrets: dict[str, Secret] = {}
    services: list[Service] = []
    addresses: dict[ObjectKey, str] = {}
    for key in sorted(gateways):
        state = gateways[key]
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
        clusters=clusters.clusters(),
        secrets=tuple(secrets[k] for k in sorted(secrets)),
    )
    return BuildResult(
        statuses=dict(sorted(statuses.items())),
        services=tuple(services),
        addresses=addresses,
        model=model,
        diagnostics=tuple(diagnostics),
    )


def _route_status(
    route: AnyRoute, parents: list[ParentResult], problems: BackendProblems
) -> dict[str, Any]:
    gen = route.metadata.generation
    return {
        "parents": [p.status(gen, problems.reason, problems.message) for p in parents],
    }
