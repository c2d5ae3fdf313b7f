"""The input and output types of `build`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from propylon.model import Model
from propylon.resources import ObjectKey, Resource, Service
from propylon.store.diagnostics import Diagnostic
from propylon.values import Values


@dataclass(frozen=True)
class Inputs:
    objects: Mapping[ObjectKey, Resource]
    values: Values = field(default_factory=Values)
    # Gateway key -> the address it had, so allocation is stable across rebuilds.
    previous_addresses: Mapping[ObjectKey, str] = field(default_factory=dict)
    # CIDRs used when no CiliumLoadBalancerIPPool exists (standalone: loopback).
    default_pool: tuple[str, ...] = ()
    # Addresses the host cannot bind (found by the shell): never allocated, and an
    # explicit request for one is AddressNotUsable.
    unbindable_addresses: frozenset[str] = frozenset()
    # False: keep the previous addresses only, give none anew (a Kubernetes node agent:
    # the operator assigns LoadBalancer addresses and the agents serve what it wrote, so
    # two agents or an agent and the operator never pick different ones).
    assign_addresses: bool = True
    # Kubernetes (operator, agents): the generated Services are real, so a class config's
    # service.type NodePort or ClusterIP means no LB-IPAM address (`gatewayapi.nodeport`);
    # standalone ignores the type.
    kubernetes: bool = False
    # CiliumGatewayClassConfigs a source refused (not among `objects`): key ->
    # (generation, what is wrong); see `gatewayapi.classconfig.invalid_configs`.
    refused_class_configs: Mapping[ObjectKey, tuple[int, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildResult:
    # Status subresource per object, JSON-ready; conditions carry observedGeneration but
    # no lastTransitionTime (the shell adds it).
    statuses: Mapping[ObjectKey, dict[str, Any]]
    services: tuple[Service, ...]
    addresses: Mapping[ObjectKey, str]
    model: Model
    diagnostics: tuple[Diagnostic, ...] = ()
    # From an incremental `Builder`: the keys whose status may differ (added, changed or
    # gone) from those in `since` (its previous result's `statuses`); every other status
    # is the very same object. None: unknown, compare everything.
    changed: frozenset[ObjectKey] | None = field(default=None, compare=False, repr=False)
    since: Mapping[ObjectKey, dict[str, Any]] | None = field(
        default=None, compare=False, repr=False
    )
