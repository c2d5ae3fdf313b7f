"""Network policy's verdicts where the data plane enforces them (see docs/policy.md).

`propylon.policy` computes these from CiliumNetworkPolicies and endpoint identities;
`propylon.envoy` turns them into RBAC filters and endpoint sets. Every regex is RE2 and
matches the whole value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class HttpRule:
    """One allowed kind of request (Cilium's `rules.http` entry): all given fields match."""

    method: str | None = None
    path: str | None = None  # against `:path` (with the query string), as Cilium does
    host: str | None = None
    headers: tuple[tuple[str, str | None], ...] = ()  # (lower-case name, exact value | None)


@dataclass(frozen=True, slots=True)
class Sources:
    """Client addresses: in one of `cidrs` and in none of `excluded`."""

    cidrs: tuple[str, ...]
    excluded: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AccessRule:
    """Requests from `sources` that match one of `http` (empty: any request)."""

    name: (
        str  # the policy and rule it came from, e.g. `CiliumClusterwideNetworkPolicy/x/ingress[0]`
    )
    sources: Sources
    http: tuple[HttpRule, ...] = ()


@dataclass(frozen=True, slots=True)
class ListenerAccess:
    """The client -> `ingress` identity verdict at one Listener: a request matching a
    `deny` rule is refused; otherwise it must match an `allow` rule. Refusals are
    answered 403 `Access denied` (HTTP) or a closed connection (TLS passthrough)."""

    deny: tuple[AccessRule, ...] = ()
    allow: tuple[AccessRule, ...] = ()


@dataclass(frozen=True, slots=True)
class BackendAccess:
    """The `ingress` identity -> backend verdict for one Cluster.

    `excluded`: endpoints (address, port) that policy does not let the `ingress`
    identity reach (left out of the load assignment). `deny_all`: no endpoint may be
    reached and the refusal is Envoy's own (403 `Access denied`). Otherwise a request
    must match, for each entry of `require`, one of its rules (the L7 rules of every
    policy on the path). `reason`: the rules that decided."""

    excluded: frozenset[tuple[str, int]] = frozenset()
    deny_all: bool = False
    require: tuple[tuple[HttpRule, ...], ...] = ()
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Access:
    """Per Listener name and per Cluster name; a name that is absent is not restricted."""

    listeners: Mapping[str, ListenerAccess] = field(default_factory=dict)
    clusters: Mapping[str, BackendAccess] = field(default_factory=dict)
