"""Cilium's own kinds that shape Gateways: CiliumGatewayClassConfig and
CiliumLoadBalancerIPPool."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator, model_validator

from propylon.resources.base import Resource, Struct, record
from propylon.resources.common import LabelSelector


@record
class GatewayClassServiceConfig(Struct):
    """How the generated `cilium-gateway-<name>` Service looks."""

    type: Literal["LoadBalancer", "NodePort", "ClusterIP"] = "LoadBalancer"
    external_traffic_policy: Literal["Cluster", "Local"] = "Cluster"
    load_balancer_class: str | None = None
    load_balancer_source_ranges: list[str] = Field(default_factory=list)
    load_balancer_source_ranges_policy: Literal["Allow", "Deny"] | None = None
    ip_families: list[Literal["IPv4", "IPv6"]] = Field(default_factory=list)
    ip_family_policy: Literal["SingleStack", "PreferDualStack", "RequireDualStack"] | None = None
    allocate_load_balancer_node_ports: bool | None = None
    traffic_distribution: str | None = None

    @field_validator("load_balancer_source_ranges")
    @classmethod
    def _cidrs(cls, ranges: list[str]) -> list[str]:
        for i, cidr in enumerate(ranges):
            try:
                ipaddress.ip_network(cidr.strip(), strict=False)
            except ValueError:
                raise ValueError(f"[{i}]: {cidr!r} is not a CIDR") from None
        return ranges


@record
class GRPCWebTranslationConfig(Struct):
    enabled: bool = True


@record
class HTTPOptions(Struct):
    grpc_web_translation: GRPCWebTranslationConfig = Field(
        default_factory=GRPCWebTranslationConfig, alias="grpcWebTranslation"
    )


# Cilium's defaults when `json` / `text` is not given.
DEFAULT_ACCESS_LOG_JSON = {
    "start_time": "%START_TIME%",
    "method": "%REQUEST_HEADER(:METHOD)%",
    "path": "%REQUEST_HEADER(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "duration": "%DURATION%",
    "upstream_service_time": "%RESPONSE_HEADER(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    "x_forwarded_for": "%REQUEST_HEADER(X-FORWARDED-FOR)%",
    "user_agent": "%REQUEST_HEADER(USER-AGENT)%",
    "request_id": "%REQUEST_HEADER(X-REQUEST-ID)%",
    "authority": "%REQUEST_HEADER(:AUTHORITY)%",
    "upstream_host": "%UPSTREAM_HOST%",
}
DEFAULT_ACCESS_LOG_TEXT = (
    '[%START_TIME%] "%REQUEST_HEADER(:METHOD)% %REQUEST_HEADER(X-ENVOY-ORIGINAL-PATH?:PATH)% '
    '%PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
    '%RESPONSE_HEADER(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQUEST_HEADER(X-FORWARDED-FOR)%" '
    '"%REQUEST_HEADER(USER-AGENT)%" "%REQUEST_HEADER(X-REQUEST-ID)%" '
    '"%REQUEST_HEADER(:AUTHORITY)%" "%UPSTREAM_HOST%"'
)


def _http_only() -> list[Literal["HTTP", "TCP"]]:
    return ["HTTP"]


@record
class AccessLogs(Struct):
    """One access log, written to Envoy's standard output."""

    format: Literal["JSON", "Text"]
    json_: dict[str, str] | None = Field(default=None, alias="json", min_length=1, max_length=64)
    text: str | None = Field(default=None, min_length=1, max_length=4096)
    targets: list[Literal["HTTP", "TCP"]] = Field(default_factory=_http_only, min_length=1)


@record
class Telemetry(Struct):
    access_logs: list[AccessLogs] = Field(default_factory=list, max_length=8)


@record
class EnvoyConfig(Struct):
    server_header_transformation: Literal["OVERWRITE", "APPEND_IF_ABSENT", "PASS_THROUGH"] = (
        "OVERWRITE"
    )


@record
class CiliumGatewayClassConfigSpec(Struct):
    service: GatewayClassServiceConfig = Field(default_factory=GatewayClassServiceConfig)
    description: str | None = None
    http_options: HTTPOptions = Field(default_factory=HTTPOptions)
    telemetry: Telemetry = Field(default_factory=Telemetry)
    envoy: EnvoyConfig = Field(default_factory=EnvoyConfig)


@record
class CiliumGatewayClassConfig(Resource):
    api_version: str = "cilium.io/v2alpha1"
    kind: str = "CiliumGatewayClassConfig"
    spec: CiliumGatewayClassConfigSpec = Field(default_factory=CiliumGatewayClassConfigSpec)


@record
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


@record
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


@record
class CiliumLoadBalancerIPPool(Resource):
    api_version: str = "cilium.io/v2"
    kind: str = "CiliumLoadBalancerIPPool"
    spec: CiliumLoadBalancerIPPoolSpec
