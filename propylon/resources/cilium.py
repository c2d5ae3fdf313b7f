"""Cilium's own kinds that shape Gateways: CiliumGatewayClassConfig and
CiliumLoadBalancerIPPool."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, model_validator

from propylon.resources.base import Resource, Struct
from propylon.resources.common import LabelSelector


class GatewayClassServiceConfig(Struct):
    """How the generated `cilium-gateway-<name>` Service looks."""

    type: Literal["LoadBalancer", "NodePort", "ClusterIP"] = "LoadBalancer"
    external_traffic_policy: Literal["Cluster", "Local"] = "Cluster"
    load_balancer_class: str | None = None
    load_balancer_source_ranges: list[str] = Field(default_factory=list)
    load_balancer_source_ranges_policy: Literal["Allow", "Deny"] | None = None
    ip_families: list[Literal["IPv4", "IPv6"]] = Field(default_factory=list)
    ip_family_policy: Literal["SingleStack", "PreferDualStack", "RequireDualStack"] | None = None
    traffic_distribution: str | None = None


class CiliumGatewayClassConfigSpec(Struct):
    service: GatewayClassServiceConfig = Field(default_factory=GatewayClassServiceConfig)
    description: str | None = None


class CiliumGatewayClassConfig(Resource):
    api_version: str = "cilium.io/v2alpha1"
    kind: str = "CiliumGatewayClassConfig"
    spec: CiliumGatewayClassConfigSpec = Field(default_factory=CiliumGatewayClassConfigSpec)


class IPPoolBlock(Struct):
    """Either a `cidr` or a `start`(-`stop`) range."""

    cidr: str | None = None
    start: str | None = None
    stop: str | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> IPPoolBlock:
        if self.cidr is not None:
            if self.start is not None or self.stop is not None:
                raise ValueError("a block has either cidr or start/stop, not both")
            try:
                ipaddress.ip_network(self.cidr, strict=False)
            except ValueError:
                raise ValueError(f"{self.cidr!r} is not a valid CIDR") from None
            return self
        if self.start is None:
            raise ValueError("a block needs cidr or start")
        try:
            start = ipaddress.ip_address(self.start)
            stop = ipaddress.ip_address(self.stop) if self.stop is not None else start
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        if start.version != stop.version or int(stop) < int(start):
            raise ValueError("stop must be an address of the same family, not below start")
        return self


class CiliumLoadBalancerIPPoolSpec(Struct):
    blocks: list[IPPoolBlock] = Field(default_factory=list)
    # v2alpha1's deprecated spelling of `blocks`.
    cidrs: list[IPPoolBlock] = Field(default_factory=list)
    service_selector: LabelSelector | None = None
    disabled: bool = False
    allow_first_last_i_ps: Literal["Yes", "No"] = Field(default="No", alias="allowFirstLastIPs")

    @property
    def all_blocks(self) -> list[IPPoolBlock]:
        return [*self.blocks, *self.cidrs]


class CiliumLoadBalancerIPPool(Resource):
    api_version: str = "cilium.io/v2"
    kind: str = "CiliumLoadBalancerIPPool"
    spec: CiliumLoadBalancerIPPoolSpec
