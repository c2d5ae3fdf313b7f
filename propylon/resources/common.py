"""Shared field types and references used by several kinds (Gateway API and core)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from propylon.resources.base import Struct, record
from propylon.resources.names import dns1123_label

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_HOSTNAME_RE = re.compile(rf"^(\*\.)?{_DNS_LABEL}(\.{_DNS_LABEL})*$")
_PRECISE_HOSTNAME_RE = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
_SECTION_NAME_RE = _PRECISE_HOSTNAME_RE
_DURATION_RE = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")
_DURATION_PART_RE = re.compile(r"([0-9]{1,5})(h|ms|m|s)")
_HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
_MS_PER_UNIT = {"h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}


def _hostname(value: str) -> str:
    if len(value) > 253 or not _HOSTNAME_RE.match(value):
        raise ValueError(
            f"{value!r} is not a valid hostname (lowercase RFC 1123 name, optionally "
            "prefixed with '*.'; IP addresses are not allowed)"
        )
    return value


def _precise_hostname(value: str) -> str:
    if len(value) > 253 or not _PRECISE_HOSTNAME_RE.match(value):
        raise ValueError(f"{value!r} is not a valid hostname (lowercase RFC 1123, no wildcard)")
    return value


def _section_name(value: str) -> str:
    if len(value) > 253 or not _SECTION_NAME_RE.match(value):
        raise ValueError(f"{value!r} is not a valid name (lowercase RFC 1123 subdomain)")
    return value


def _duration(value: str) -> str:
    if not _DURATION_RE.match(value):
        raise ValueError(f"{value!r} is not a Gateway API duration (e.g. '500ms', '10s', '1h2m')")
    return value


def _header_name(value: str) -> str:
    if not value or len(value) > 256 or not _HEADER_NAME_RE.match(value):
        raise ValueError(f"{value!r} is not a valid HTTP header name")
    return value


def _namespace(value: str) -> str:
    why = dns1123_label(value)
    if why is not None:
        raise ValueError(f"{value!r} is not a valid namespace: {why}")
    return value


def parse_duration_ms(value: str) -> int:
    """Milliseconds of a Gateway API duration such as "1h2m" or "500ms"."""
    _duration(value)
    return sum(int(n) * _MS_PER_UNIT[unit] for n, unit in _DURATION_PART_RE.findall(value))


Hostname = Annotated[str, AfterValidator(_hostname)]
PreciseHostname = Annotated[str, AfterValidator(_precise_hostname)]
SectionName = Annotated[str, AfterValidator(_section_name)]
Duration = Annotated[str, AfterValidator(_duration)]
HeaderName = Annotated[str, AfterValidator(_header_name)]
PortNumber = Annotated[int, Field(ge=1, le=65535)]
Namespace = Annotated[str, AfterValidator(_namespace)]

GATEWAY_GROUP = "gateway.networking.k8s.io"


@record
class LabelSelectorRequirement(Struct):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list)

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels


@record
class LabelSelector(Struct):
    """Kubernetes label selector; an empty selector matches everything."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list)

    def matches(self, labels: Mapping[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        return all(e.matches(labels) for e in self.match_expressions)


@record
class ParentReference(Struct):
    group: str = GATEWAY_GROUP
    kind: str = "Gateway"
    namespace: Namespace | None = None
    name: str = Field(min_length=1, max_length=253)
    section_name: SectionName | None = None
    port: PortNumber | None = None


@record
class BackendObjectReference(Struct):
    group: str = ""
    kind: str = "Service"
    name: str = Field(min_length=1, max_length=253)
    namespace: Namespace | None = None
    port: PortNumber | None = None

    @model_validator(mode="after")
    def _service_needs_port(self) -> BackendObjectReference:
        # CRD rule: "Must have port for Service reference".
        if self.group == "" and self.kind == "Service" and self.port is None:
            raise ValueError("Must have port for Service reference")
        return self


@record
class BackendRef(BackendObjectReference):
    weight: int = Field(default=1, ge=0, le=1_000_000)


@record
class SecretObjectReference(Struct):
    group: str = ""
    kind: str = "Secret"
    name: str = Field(min_length=1, max_length=253)
    namespace: Namespace | None = None


@record
class LocalObjectReference(Struct):
    group: str
    kind: str
    name: str = Field(min_length=1)


def is_ip_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
