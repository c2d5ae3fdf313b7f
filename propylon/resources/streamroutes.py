"""TCPRoute and UDPRoute (v1 since Gateway API v1.6; v1alpha2 before): every connection
or datagram a TCP or UDP listener receives goes to one rule's backends."""

from __future__ import annotations

from pydantic import Field, model_validator

from propylon.resources.base import Resource, Struct, record
from propylon.resources.common import GATEWAY_GROUP, BackendRef, ParentReference, SectionName
from propylon.resources.routes import _route_spec_problem


@record
class StreamRouteRule(Struct):
    name: SectionName | None = None
    backend_refs: list[BackendRef] = Field(min_length=1, max_length=16)


@record
class StreamRouteSpec(Struct):
    parent_refs: list[ParentReference] = Field(default_factory=list, max_length=32)
    # v1 allows one rule, v1alpha2 up to 16 (checked per version by the route).
    rules: list[StreamRouteRule] = Field(min_length=1, max_length=16)

    @model_validator(mode="after")
    def _spec_rules(self) -> StreamRouteSpec:
        # The experimental channel's rule (sectionName or port): the looser of the two
        # channels' (standard: sectionName only); with CRDs, the CRD's own applies.
        problem = _route_spec_problem(self.parent_refs, [r.name for r in self.rules], 0)
        if problem is not None:
            raise ValueError(problem)
        return self


@record
class _StreamRoute(Resource):
    spec: StreamRouteSpec

    @model_validator(mode="after")
    def _v1_one_rule(self) -> _StreamRoute:
        if self.api_version.endswith("/v1") and len(self.spec.rules) > 1:
            raise ValueError(
                f"spec.rules: Too many: {len(self.spec.rules)}: must have at most 1 item"
            )
        return self


@record
class TCPRoute(_StreamRoute):
    api_version: str = f"{GATEWAY_GROUP}/v1"
    kind: str = "TCPRoute"


@record
class UDPRoute(_StreamRoute):
    api_version: str = f"{GATEWAY_GROUP}/v1"
    kind: str = "UDPRoute"
