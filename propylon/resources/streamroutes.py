"""TCPRoute and UDPRoute (v1 since Gateway API v1.6; v1alpha2 before): every connection
or datagram a TCP or UDP listener receives goes to one rule's backends."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field, model_validator

from propylon.resources.base import Resource, Struct
from propylon.resources.common import GATEWAY_GROUP, BackendRef, ParentReference, SectionName


class StreamRouteRule(Struct):
    name: SectionName | None = None
    backend_refs: list[BackendRef] = Field(min_length=1, max_length=16)


def _parent_refs_problem(refs: Sequence[ParentReference]) -> str | None:
    """The CRDs' two CEL rules on parentRefs (sectionName only, unlike HTTPRoute's)."""
    if len(refs) < 2:
        return None
    groups: dict[tuple[str, str, str, str], list[str]] = {}
    for ref in refs:
        parent = (ref.group, ref.kind, ref.name, ref.namespace or "")
        groups.setdefault(parent, []).append(ref.section_name or "")
    for sections in groups.values():
        if len(sections) < 2:
            continue
        if len({s == "" for s in sections}) > 1:
            return (
                "parentRefs: sectionName must be specified when parentRefs includes 2 or "
                "more references to the same parent"
            )
        if len(sections) != len(set(sections)):
            return (
                "parentRefs: sectionName must be unique when parentRefs includes 2 or more "
                "references to the same parent"
            )
    return None


class StreamRouteSpec(Struct):
    parent_refs: list[ParentReference] = Field(default_factory=list, max_length=32)
    # v1 allows one rule, v1alpha2 up to 16 (checked per version by the route).
    rules: list[StreamRouteRule] = Field(min_length=1, max_length=16)

    @model_validator(mode="after")
    def _spec_rules(self) -> StreamRouteSpec:
        problem = _parent_refs_problem(self.parent_refs)
        if problem is not None:
            raise ValueError(problem)
        named = [r.name for r in self.rules if r.name]
        if len(named) != len(set(named)):
            raise ValueError("rules: Rule name must be unique within the route")
        return self


class _StreamRoute(Resource):
    spec: StreamRouteSpec

    @model_validator(mode="after")
    def _v1_one_rule(self) -> _StreamRoute:
        if self.api_version.endswith("/v1") and len(self.spec.rules) > 1:
            raise ValueError(
                f"spec.rules: Too many: {len(self.spec.rules)}: must have at most 1 item"
            )
        return self


class TCPRoute(_StreamRoute):
    api_version: str = f"{GATEWAY_GROUP}/v1"
    kind: str = "TCPRoute"


class UDPRoute(_StreamRoute):
    api_version: str = f"{GATEWAY_GROUP}/v1"
    kind: str = "UDPRoute"
