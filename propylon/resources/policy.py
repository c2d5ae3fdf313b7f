"""ReferenceGrant (v1beta1, v1) and BackendTLSPolicy (v1, v1alpha3)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from propylon.resources.base import Resource, Struct, record
from propylon.resources.common import (
    GATEWAY_GROUP,
    LocalObjectReference,
    Namespace,
    PreciseHostname,
    SectionName,
)


@record
class ReferenceGrantFrom(Struct):
    group: str
    kind: str = Field(min_length=1)
    namespace: Namespace


@record
class ReferenceGrantTo(Struct):
    group: str
    kind: str = Field(min_length=1)
    name: str | None = None


@record
class ReferenceGrantSpec(Struct):
    from_: list[ReferenceGrantFrom] = Field(alias="from", min_length=1, max_length=16)
    to: list[ReferenceGrantTo] = Field(min_length=1, max_length=16)


@record
class ReferenceGrant(Resource):
    api_version: str = f"{GATEWAY_GROUP}/v1beta1"
    kind: str = "ReferenceGrant"
    spec: ReferenceGrantSpec


@record
class PolicyTargetReference(Struct):
    group: str
    kind: str = Field(min_length=1)
    name: str = Field(min_length=1)
    section_name: SectionName | None = None


@record
class SubjectAltName(Struct):
    type: Literal["Hostname", "URI"]
    hostname: str | None = None
    uri: str | None = None

    @model_validator(mode="after")
    def _value_for_type(self) -> SubjectAltName:
        if self.type == "Hostname" and not self.hostname:
            raise ValueError(
                "SubjectAltName element must contain Hostname, if Type is set to Hostname"
            )
        if self.type == "URI" and not self.uri:
            raise ValueError("SubjectAltName element must contain URI, if Type is set to URI")
        return self


@record
class BackendTLSPolicyValidation(Struct):
    ca_certificate_refs: list[LocalObjectReference] = Field(default_factory=list, max_length=8)
    well_known_ca_certificates: Literal["System"] | None = Field(
        default=None, alias="wellKnownCACertificates"
    )
    hostname: PreciseHostname
    subject_alt_names: list[SubjectAltName] = Field(default_factory=list, max_length=5)

    @model_validator(mode="after")
    def _one_trust_source(self) -> BackendTLSPolicyValidation:
        if bool(self.ca_certificate_refs) == (self.well_known_ca_certificates is not None):
            raise ValueError("must specify either CACertificateRefs or WellKnownCACertificates")
        return self


@record
class BackendTLSPolicySpec(Struct):
    target_refs: list[PolicyTargetReference] = Field(min_length=1, max_length=16)
    validation: BackendTLSPolicyValidation
    options: dict[str, str] = Field(default_factory=dict)


@record
class BackendTLSPolicy(Resource):
    api_version: str = f"{GATEWAY_GROUP}/v1"
    kind: str = "BackendTLSPolicy"
    spec: BackendTLSPolicySpec
