"""CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy (cilium.io/v2): the subset of
the rule language that governs traffic through a Gateway (see docs/policy.md).

Fields outside the subset (toFQDNs, icmps, DNS or Kafka L7 rules, ...) are accepted and
ignored: they govern traffic that never passes through Propylon's Envoy."""

from __future__ import annotations

import ipaddress
from typing import Literal

import re2
from pydantic import Field, field_validator, model_validator

from propylon.resources.base import Resource, Struct, record
from propylon.resources.common import LabelSelector

#: The entities a rule may name (Cilium's list); Propylon's flows only ever involve
#: world, cluster (pods and the `ingress` identity), ingress and all.
Entity = Literal[
    "world",
    "world-ipv4",
    "world-ipv6",
    "cluster",
    "host",
    "remote-node",
    "kube-apiserver",
    "ingress",
    "init",
    "health",
    "unmanaged",
    "all",
]
Protocol = Literal["TCP", "UDP", "SCTP", "ANY"]


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValueError(f"{value!r} is not a valid CIDR") from None


def _regex(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        re2.compile(value)
    except re2.error as exc:
        raise ValueError(f"{value!r} is not a valid (RE2) regular expression: {exc}") from None
    return value


@record
class CIDRRule(Struct):
    cidr: str
    except_: list[str] = Field(default_factory=list, alias="except")

    @field_validator("cidr")
    @classmethod
    def _valid(cls, value: str) -> str:
        return _cidr(value)

    @field_validator("except_")
    @classmethod
    def _valid_except(cls, values: list[str]) -> list[str]:
        return [_cidr(v) for v in values]

    @model_validator(mode="after")
    def _inside(self) -> CIDRRule:
        outer = ipaddress.ip_network(self.cidr)
        for i, inner in enumerate(self.except_):
            net = ipaddress.ip_network(inner)
            if net.version != outer.version or not net.subnet_of(outer):  # type: ignore[arg-type]
                raise ValueError(f"except[{i}]: {inner} is not contained in cidr {self.cidr}")
        return self


@record
class PortProtocol(Struct):
    port: str = "0"
    end_port: int | None = Field(default=None, ge=0, le=65535)
    protocol: Protocol = "ANY"

    @field_validator("port", mode="before")
    @classmethod
    def _number(cls, value: object) -> str:
        text = str(value)
        if not text.isdigit():
            # Cilium also accepts a container port's name; Propylon does not read
            # container ports, so it says so instead of matching nothing in silence.
            raise ValueError(f"named port {text!r} is not supported: give the port number")
        if not 0 <= int(text) <= 65535:
            raise ValueError(f"port {text} is out of range 0-65535")
        return text

    @property
    def low(self) -> int:
        return int(self.port)

    @property
    def high(self) -> int:
        low = int(self.port)
        if low == 0:
            return 65535
        return max(low, self.end_port or low)


@record
class HeaderMatch(Struct):
    name: str = Field(min_length=1)
    value: str | None = None
    secret: dict[str, str] | None = None

    @model_validator(mode="after")
    def _no_secret(self) -> HeaderMatch:
        if self.secret is not None:
            raise ValueError("headerMatches with a secret are not supported")
        return self


@record
class PortRuleHTTP(Struct):
    """One allowed kind of request: every given field must match (regexes are RE2,
    matched against the whole value)."""

    method: str | None = None
    path: str | None = None
    host: str | None = None
    headers: list[str] = Field(default_factory=list)
    header_matches: list[HeaderMatch] = Field(default_factory=list)

    @field_validator("method", "path", "host")
    @classmethod
    def _re2(cls, value: str | None) -> str | None:
        return _regex(value)

    def header_requirements(self) -> tuple[tuple[str, str | None], ...]:
        """(lower-case name, exact value or None for presence)."""
        out: list[tuple[str, str | None]] = []
        for text in self.headers:
            name, sep, value = text.partition(":")
            out.append((name.strip().lower(), value.strip() if sep else None))
        for hm in self.header_matches:
            out.append((hm.name.lower(), hm.value))
        return tuple(out)


@record
class L7Rules(Struct):
    http: list[PortRuleHTTP] | None = None


@record
class PortRule(Struct):
    ports: list[PortProtocol] = Field(default_factory=list)
    rules: L7Rules | None = None


@record
class PortDenyRule(Struct):
    ports: list[PortProtocol] = Field(default_factory=list)


@record
class _Peers(Struct):
    """The sources (ingress) or destinations (egress) of one rule; the `from`/`to`
    prefix is mapped onto these names by the subclasses' aliases."""

    endpoints: list[LabelSelector] | None = None
    entities: list[Entity] | None = None
    cidr: list[str] | None = None
    cidr_set: list[CIDRRule] | None = None

    @field_validator("cidr")
    @classmethod
    def _valid_cidrs(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else [_cidr(v) for v in values]

    @property
    def has_peers(self) -> bool:
        return bool(self.endpoints or self.entities or self.cidr or self.cidr_set)


@record
class IngressRule(_Peers):
    endpoints: list[LabelSelector] | None = Field(default=None, alias="fromEndpoints")
    entities: list[Entity] | None = Field(default=None, alias="fromEntities")
    cidr: list[str] | None = Field(default=None, alias="fromCIDR")
    cidr_set: list[CIDRRule] | None = Field(default=None, alias="fromCIDRSet")
    to_ports: list[PortRule] = Field(default_factory=list)


@record
class IngressDenyRule(_Peers):
    endpoints: list[LabelSelector] | None = Field(default=None, alias="fromEndpoints")
    entities: list[Entity] | None = Field(default=None, alias="fromEntities")
    cidr: list[str] | None = Field(default=None, alias="fromCIDR")
    cidr_set: list[CIDRRule] | None = Field(default=None, alias="fromCIDRSet")
    to_ports: list[PortDenyRule] = Field(default_factory=list)


@record
class EgressRule(_Peers):
    endpoints: list[LabelSelector] | None = Field(default=None, alias="toEndpoints")
    entities: list[Entity] | None = Field(default=None, alias="toEntities")
    cidr: list[str] | None = Field(default=None, alias="toCIDR")
    cidr_set: list[CIDRRule] | None = Field(default=None, alias="toCIDRSet")
    to_ports: list[PortRule] = Field(default_factory=list)


@record
class EgressDenyRule(_Peers):
    endpoints: list[LabelSelector] | None = Field(default=None, alias="toEndpoints")
    entities: list[Entity] | None = Field(default=None, alias="toEntities")
    cidr: list[str] | None = Field(default=None, alias="toCIDR")
    cidr_set: list[CIDRRule] | None = Field(default=None, alias="toCIDRSet")
    to_ports: list[PortDenyRule] = Field(default_factory=list)


@record
class DefaultDeny(Struct):
    ingress: bool | None = None
    egress: bool | None = None


@record
class PolicyRule(Struct):
    """One rule: the endpoints it selects and what it allows or denies for them."""

    description: str | None = None
    endpoint_selector: LabelSelector | None = None
    node_selector: LabelSelector | None = None
    ingress: list[IngressRule] | None = None
    ingress_deny: list[IngressDenyRule] | None = None
    egress: list[EgressRule] | None = None
    egress_deny: list[EgressDenyRule] | None = None
    enable_default_deny: DefaultDeny | None = None

    @model_validator(mode="after")
    def _one_selector(self) -> PolicyRule:
        if (self.endpoint_selector is None) == (self.node_selector is None):
            raise ValueError("exactly one of endpointSelector and nodeSelector must be set")
        return self


@record
class _NetworkPolicy(Resource):
    api_version: str = "cilium.io/v2"
    spec: PolicyRule | None = None
    specs: list[PolicyRule] | None = None

    @model_validator(mode="after")
    def _has_rules(self) -> _NetworkPolicy:
        if self.spec is None and not self.specs:
            raise ValueError("spec or specs must be set")
        return self

    @property
    def rules(self) -> tuple[tuple[str, PolicyRule], ...]:
        """(field path, rule): `spec` and each of `specs[i]`."""
        out: list[tuple[str, PolicyRule]] = []
        if self.spec is not None:
            out.append(("spec", self.spec))
        out.extend((f"specs[{i}]", r) for i, r in enumerate(self.specs or ()))
        return tuple(out)


@record
class CiliumNetworkPolicy(_NetworkPolicy):
    kind: str = "CiliumNetworkPolicy"


@record
class CiliumClusterwideNetworkPolicy(_NetworkPolicy):
    kind: str = "CiliumClusterwideNetworkPolicy"
