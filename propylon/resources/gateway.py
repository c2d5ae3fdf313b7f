"""GatewayClass and Gateway (gateway.networking.k8s.io v1, v1beta1)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from propylon.resources.base import Resource, Struct, record
from propylon.resources.common import (
    GATEWAY_GROUP,
    Hostname,
    LabelSelector,
    Namespace,
    PortNumber,
    SecretObjectReference,
    SectionName,
    is_ip_address,
)


@record
class ParametersReference(Struct):
    group: str
    kind: str
    name: str = Field(min_length=1)
    namespace: str | None = None


@record
class GatewayClassSpec(Struct):
    controller_name: str = Field(min_length=1)
    parameters_ref: ParametersReference | None = None
    description: str | None = None


@record
class GatewayClass(Resource):
    api_version: str = f"{GATEWAY_GROUP}/v1"
    kind: str = "GatewayClass"
    spec: GatewayClassSpec


@record
class RouteGroupKind(Struct):
    group: str = GATEWAY_GROUP
    kind: str = Field(min_length=1)


@record
class ListenerNamespaces(Struct):
    """Gateway `spec.allowedListeners.namespaces`: which ListenerSets may attach."""

    from_: Literal["All", "Selector", "Same", "None"] = Field(default="None", alias="from")
    selector: LabelSelector | None = None


@record
class AllowedListeners(Struct):
    namespaces: ListenerNamespaces = Field(default_factory=ListenerNamespaces)


@record
class RouteNamespaces(Struct):
    from_: Literal["All", "Selector", "Same"] = Field(default="Same", alias="from")
    selector: LabelSelector | None = None


@record
class AllowedRoutes(Struct):
    namespaces: RouteNamespaces = Field(default_factory=RouteNamespaces)
    kinds: list[RouteGroupKind] = Field(default_factory=list)


@record
class GatewayTLSConfig(Struct):
    mode: Literal["Terminate", "Passthrough"] = "Terminate"
    certificate_refs: list[SecretObjectReference] = Field(default_factory=list, max_length=64)
    options: dict[str, str] = Field(default_factory=dict)


@record
class Listener(Struct):
    name: SectionName
    hostname: Hostname | None = None
    port: PortNumber
    protocol: str = Field(min_length=1, max_length=255)
    tls: GatewayTLSConfig | None = None
    allowed_routes: AllowedRoutes = Field(default_factory=AllowedRoutes)

    @model_validator(mode="after")
    def _tls_matches_protocol(self) -> Listener:
        if self.protocol in ("HTTP", "TCP", "UDP") and self.tls is not None:
            raise ValueError("tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']")
        if self.protocol == "HTTPS" and self.tls is not None and self.tls.mode != "Terminate":
            raise ValueError("tls mode must be Terminate for protocol HTTPS")
        if self.protocol in ("TCP", "UDP") and self.hostname is not None:
            raise ValueError("hostname must not be specified for protocols ['TCP', 'UDP']")
        return self


@record
class GatewaySpecAddress(Struct):
    type: str = "IPAddress"
    value: str | None = None

    @model_validator(mode="after")
    def _value_matches_type(self) -> GatewaySpecAddress:
        if self.type == "IPAddress" and self.value is not None and not is_ip_address(self.value):
            raise ValueError(f"{self.value!r} is not a valid IP address")
        return self


@record
class GatewayInfrastructure(Struct):
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    parameters_ref: ParametersReference | None = None


@record
class CACertificateRef(Struct):
    """An ObjectReference (group, kind, name required; namespace optional)."""

    group: str
    kind: str = Field(min_length=1, max_length=63)
    name: str = Field(min_length=1, max_length=253)
    namespace: Namespace | None = None


@record
class FrontendTLSValidation(Struct):
    ca_certificate_refs: list[CACertificateRef] = Field(min_length=1, max_length=16)
    mode: Literal["AllowValidOnly", "AllowInsecureFallback"] = "AllowValidOnly"


@record
class FrontendTLSConfig(Struct):
    validation: FrontendTLSValidation | None = None


@record
class TLSPortConfig(Struct):
    port: PortNumber
    tls: FrontendTLSConfig


@record
class FrontendTLS(Struct):
    """Gateway `spec.tls.frontend`: client certificate validation, by default and per port."""

    default: FrontendTLSConfig
    per_port: list[TLSPortConfig] = Field(default_factory=list, max_length=64)

    @field_validator("per_port")
    @classmethod
    def _unique_ports(cls, per_port: list[TLSPortConfig]) -> list[TLSPortConfig]:
        ports = [p.port for p in per_port]
        if len(set(ports)) != len(ports):
            raise ValueError("Port for TLS configuration must be unique within the Gateway")
        return per_port

    def for_port(self, port: int) -> FrontendTLSValidation | None:
        """The validation that applies to HTTPS listeners on `port`."""
        for entry in self.per_port:
            if entry.port == port:
                return entry.tls.validation
        return self.default.validation


@record
class GatewayBackendTLS(Struct):
    client_certificate_ref: SecretObjectReference | None = None


@record
class GatewayTLS(Struct):
    """Gateway `spec.tls` (Gateway API v1.5+)."""

    frontend: FrontendTLS | None = None
    backend: GatewayBackendTLS | None = None


@record
class GatewaySpec(Struct):
    gateway_class_name: str = Field(min_length=1, max_length=253)
    listeners: list[Listener] = Field(min_length=1, max_length=64)
    addresses: list[GatewaySpecAddress] = Field(default_factory=list, max_length=16)
    infrastructure: GatewayInfrastructure | None = None
    allowed_listeners: AllowedListeners | None = None
    tls: GatewayTLS | None = None

    @field_validator("listeners")
    @classmethod
    def _unique_listeners(cls, listeners: list[Listener]) -> list[Listener]:
        return unique_listeners(listeners)


def unique_listeners(listeners: list[Listener]) -> list[Listener]:
    """The CRDs' rules for a Gateway's (or a ListenerSet's) listeners."""
    names = [listener.name for listener in listeners]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"Listener name must be unique within the Gateway: {', '.join(dupes)}")
    combos = [(li.port, li.protocol, li.hostname or "") for li in listeners]
    if len(set(combos)) != len(combos):
        raise ValueError(
            "Combination of port, protocol and hostname must be unique for each listener"
        )
    return listeners


@record
class Gateway(Resource):
    api_version: str = f"{GATEWAY_GROUP}/v1"
    kind: str = "Gateway"
    spec: GatewaySpec
