"""A Model and the objects -> the Model with `access` (what Envoy enforces).

Where Cilium enforces, and so where Propylon does (docs/policy.md):
- client -> `ingress` identity: the `ingress` identity's ingress policy, at the
  Gateway's Listener (port: the Listener's), answered 403 `Access denied`;
- `ingress` identity -> backend: the `ingress` identity's egress policy (Envoy's answer
  403 `Access denied`) and the backend's ingress policy (an L3/L4 denial is a dropped
  connection: the endpoint is left out; L7 rules: 403), per endpoint, at the port the
  endpoint listens on.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from propylon.model import (
    Access,
    AccessRule,
    BackendAccess,
    Cluster,
    HttpRule,
    ListenerAccess,
    Model,
    Sources,
)
from propylon.policy.identity import INGRESS, Identity, pod_identity, world
from propylon.policy.rules import Peers, Rule, Section, flatten
from propylon.policy.verdict import Verdict, decide
from propylon.resources import (
    CiliumClusterwideNetworkPolicy,
    CiliumNetworkPolicy,
    EndpointSlice,
    Namespace,
    ObjectKey,
    Pod,
    Resource,
)

#: Kinds only network policy reads (Gateway API semantics ignore them).
POLICY_KINDS = frozenset({"CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy", "Pod"})
_RULE_KINDS = frozenset({"CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy"})
#: Kinds whose change can change a verdict.
_WORLD_KINDS = POLICY_KINDS | {"Namespace", "EndpointSlice"}
_ALL = ("0.0.0.0/0", "::/0")


@dataclass(frozen=True)
class World:
    """Everything a verdict depends on besides the flow itself."""

    rules: tuple[Rule, ...]
    sections: tuple[Section, ...]
    pods: Mapping[str, Identity]  # "namespace/name" -> identity
    by_address: Mapping[str, Identity]  # pod IP -> identity (IPs of one pod only)
    by_endpoint: Mapping[tuple[str, int], Identity]  # EndpointSlice targetRefs
    pod_addresses: Mapping[str, str]  # pod IP -> "namespace/name"
    #: Memos of what depends on the world only (it never changes once built).
    _memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def pod_networks(self) -> tuple[str, ...]:
        """Every pod address, as the fewest CIDRs (Envoy checks them one by one)."""
        key = ("pod-networks",)
        if key not in self._memo:
            v4 = [ipaddress.IPv4Network(a) for a in self.pod_addresses if ":" not in a]
            v6 = [ipaddress.IPv6Network(a) for a in self.pod_addresses if ":" in a]
            self._memo[key] = tuple(
                [str(n) for n in ipaddress.collapse_addresses(v4)]
                + [str(n) for n in ipaddress.collapse_addresses(v6)]
            )
        return self._memo[key]  # type: ignore[no-any-return]

    def selecting(self, direction: str, subject: Identity) -> tuple[list[Rule], list[str]]:
        """The rules of `direction` that select `subject`, and the policies that put it
        into default deny there (memoized per identity)."""
        key = ("selecting", direction, subject.kind, subject.name)
        found = self._memo.get(key)
        if found is None:
            rules = [
                r for r in self.rules if r.direction == direction and r.selector.matches(subject)
            ]
            enforcing = sorted(
                {
                    s.policy
                    for s in self.sections
                    if s.direction == direction and s.default_deny and s.selector.matches(subject)
                }
            )
            found = self._memo[key] = (rules, enforcing)
        return found

    def source(self, address: str) -> Identity:
        return self.by_address.get(address) or world(address)

    def backend(self, address: str, port: int) -> Identity:
        found = self.by_endpoint.get((address, port)) or self.by_address.get(address)
        return found or world(address)

    def decide(
        self, direction: str, subject: Identity, peer: Identity, port: int, protocol: str = "TCP"
    ) -> Verdict:
        rules, enforcing = self.selecting(direction, subject)
        return decide(
            rules,
            enforcing,
            "ingress" if direction == "ingress" else "egress",
            subject,
            peer,
            port,
            protocol,
        )


def build_world(objects: Mapping[ObjectKey, Resource]) -> World | None:
    """None when no network policy exists (nothing is enforced)."""
    policies = [o for o in objects.values() if o.kind in POLICY_KINDS and o.kind != "Pod"]
    if not policies:
        return None
    namespaces = {o.metadata.name: o for o in objects.values() if isinstance(o, Namespace)}
    pods = [o for o in objects.values() if isinstance(o, Pod)]
    slices = [o for o in objects.values() if isinstance(o, EndpointSlice)]
    return _world(policies, namespaces, pods, slices)


#: Pod key -> (the Pod, its namespace's labels, its identity): reused while both are
#: the same (a world is rebuilt on every Pod or EndpointSlice change).
IdentityCache = dict[tuple[str, str], tuple[Pod, Mapping[str, str], Identity]]


def _world(
    policies: Iterable[Resource],
    namespaces: Mapping[str, Namespace],
    pods: Iterable[Pod],
    slices: Iterable[EndpointSlice],
    cache: IdentityCache | None = None,
) -> World:
    rules: list[Rule] = []
    sections: list[Section] = []
    for p in sorted(policies, key=lambda o: (o.kind, o.metadata.namespace, o.metadata.name)):
        assert isinstance(p, CiliumNetworkPolicy | CiliumClusterwideNetworkPolicy)
        r, s = flatten(p)
        rules.extend(r)
        sections.extend(s)
    identities: dict[str, Identity] = {}
    owners: dict[str, set[str]] = {}
    fresh: IdentityCache = {}
    for pod in pods:
        ns = pod.metadata.namespace
        ns_obj = namespaces.get(ns)
        ns_labels = ns_obj.effective_labels if ns_obj is not None else {}
        key = (ns, pod.metadata.name)
        hit = cache.get(key) if cache is not None else None
        if hit is not None and hit[0] is pod and hit[1] == ns_labels:
            ident = hit[2]
        else:
            ident = pod_identity(ns, pod.metadata.name, pod.metadata.labels, ns_labels)
        fresh[key] = (pod, ns_labels, ident)
        identities[ident.name] = ident
        for address in pod.addresses:
            owners.setdefault(address, set()).add(ident.name)
    if cache is not None:
        cache.clear()
        cache.update(fresh)
    by_address = {a: identities[next(iter(o))] for a, o in owners.items() if len(o) == 1}
    by_endpoint: dict[tuple[str, int], Identity] = {}
    for sl in slices:
        ports = [p.port for p in sl.ports if p.port]
        for ep in sl.endpoints:
            ref = ep.target_ref
            if ref is None or (ref.kind or "Pod") != "Pod" or not ref.name:
                continue
            target = identities.get(f"{ref.namespace or sl.metadata.namespace}/{ref.name}")
            if target is None:
                continue
            for address in ep.addresses:
                for port in ports:
                    by_endpoint[(address, port)] = target
    return World(
        tuple(rules),
        tuple(sections),
        identities,
        by_address,
        by_endpoint,
        {a: i.name for a, i in by_address.items()},
    )


# --- client -> ingress identity, at a Listener ----------------------------------------


def _host(address: str) -> str:
    return f"{address}/128" if ":" in address else f"{address}/32"


def _sources(peers: Peers, world_: World) -> list[Sources]:
    if peers.anyone or "all" in peers.entities:
        return [Sources(_ALL)]
    pods = world_.pod_networks()
    out: list[Sources] = []
    fams = peers.entities & {"world", "world-ipv4", "world-ipv6"}
    if fams:
        cidrs: tuple[str, ...] = _ALL
        if "world" not in fams:
            cidrs = tuple(
                c for c, f in zip(_ALL, ("world-ipv4", "world-ipv6"), strict=True) if f in fams
            )
        out.append(Sources(cidrs, pods))
    if "cluster" in peers.entities and pods:
        out.append(Sources(pods))
    for c in peers.cidrs:
        net = ipaddress.ip_network(c.cidr)
        # Pods inside the CIDR have their own identity: a CIDR rule does not match them.
        inside = [p for p in pods if ipaddress.ip_network(p).overlaps(net)]
        out.append(Sources((c.cidr,), (*c.excepts, *inside)))
    if peers.endpoints and "cluster" not in peers.entities:
        selected = sorted(
            a
            for a, name in world_.pod_addresses.items()
            if any(s.matches(world_.pods[name]) for s in peers.endpoints)
        )
        if selected:
            out.append(Sources(tuple(_host(a) for a in selected)))
    return out


def listener_access(world_: World, port: int) -> ListenerAccess | None:
    """The `ingress` identity's ingress policy for clients of a Listener on `port`."""
    key = ("listener", port)
    if key not in world_._memo:
        world_._memo[key] = _listener_access(world_, port)
    return world_._memo[key]  # type: ignore[no-any-return]


def _listener_access(world_: World, port: int) -> ListenerAccess | None:
    selecting, enforcing = world_.selecting("ingress", INGRESS)
    rules = [r for r in selecting if r.port_matches(port)]
    deny = [AccessRule(r.name, src) for r in rules if r.deny for src in _sources(r.peers, world_)]
    if not enforcing and not deny:
        return None
    if enforcing:
        allow = [
            AccessRule(r.name, src, r.http or ())
            for r in rules
            if not r.deny
            for src in _sources(r.peers, world_)
        ]
    else:
        allow = [AccessRule("no policy selects the ingress identity for ingress", Sources(_ALL))]
    return ListenerAccess(tuple(deny), tuple(allow))


# --- ingress identity -> backend endpoints -------------------------------------------


@dataclass(frozen=True, slots=True)
class EndpointVerdict:
    address: str
    port: int
    backend: Identity
    egress: Verdict  # of the ingress identity, to the backend
    ingress: Verdict  # of the backend, from the ingress identity

    @property
    def admitted(self) -> bool:
        return self.egress.allowed and self.ingress.allowed


def endpoint_verdicts(world_: World, cluster: Cluster) -> list[EndpointVerdict]:
    out = []
    for e in cluster.endpoints:
        if not e.ready:
            continue
        backend = world_.backend(e.address, e.port)
        egress = world_.decide("egress", INGRESS, backend, e.port)
        if backend.kind == "pod":
            ingress = world_.decide("ingress", backend, INGRESS, e.port)
        else:
            ingress = Verdict(True, None, (), "outside", "ingress", backend, INGRESS, e.port)
        out.append(EndpointVerdict(e.address, e.port, backend, egress, ingress))
    return out


def backend_access(world_: World, cluster: Cluster) -> BackendAccess | None:
    verdicts = endpoint_verdicts(world_, cluster)
    if not verdicts:
        return None
    admitted = [v for v in verdicts if v.admitted]
    excluded = frozenset((v.address, v.port) for v in verdicts if not v.admitted)
    if not admitted:
        refused_by_envoy = [v for v in verdicts if v.ingress.allowed]
        if refused_by_envoy:
            # The ingress identity's own egress policy: Cilium's Envoy answers 403, so
            # those endpoints stay (Envoy's upstream filter refuses every request).
            dropped = frozenset((v.address, v.port) for v in verdicts if not v.ingress.allowed)
            return BackendAccess(
                excluded=dropped, deny_all=True, reason=_names(v.egress for v in refused_by_envoy)
            )
        return BackendAccess(excluded=excluded, reason=_names(v.ingress for v in verdicts))
    require: list[tuple[HttpRule, ...]] = []
    for v in admitted:
        for verdict in (v.egress, v.ingress):
            if verdict.http is not None and verdict.http not in require:
                require.append(verdict.http)
    if not excluded and not require:
        return None
    deciding = [v.ingress if v.egress.allowed else v.egress for v in verdicts if not v.admitted]
    deciding += [x for v in admitted for x in (v.egress, v.ingress) if x.http is not None]
    return BackendAccess(excluded=excluded, require=tuple(require), reason=_names(deciding))


def _names(verdicts: Iterable[Verdict]) -> str:
    """The rules behind verdicts (`BackendAccess.reason`; `explain` says the rest)."""
    out: list[str] = []
    for v in verdicts:
        out.extend(n for n in v.rules if n not in out)
    return ", ".join(out)


# --- the engine -------------------------------------------------------------------------


class PolicyEngine:
    """`apply(model, objects, changed)` with memory: the world is rebuilt only when a
    kind it reads changed, and a cluster's verdict only when the cluster or the world
    did. Without memory (a fresh engine) the result is the same."""

    def __init__(self) -> None:
        self._index: dict[str, dict[ObjectKey, Resource]] = {}
        self._world: World | None = None
        self._version = 0
        self._rules_version = 0  # bumped when a policy (not a Pod or a slice) changed
        self._identities: IdentityCache = {}
        self._clusters: dict[
            str, tuple[Cluster, int, tuple[Identity, ...], BackendAccess | None]
        ] = {}
        self._last: tuple[Any, ...] | None = None
        self._access: Access | None = None

    @property
    def world(self) -> World | None:
        return self._world

    def apply(
        self,
        model: Model,
        objects: Mapping[ObjectKey, Resource],
        changed: Collection[ObjectKey] | None = None,
    ) -> Model:
        if changed is None or not self._index:
            self._index = {k: {} for k in _WORLD_KINDS}
            for key, obj in objects.items():
                if key.kind in _WORLD_KINDS:
                    self._index[key.kind][key] = obj
            self._rules_version += 1
            self._rebuild()
        else:
            touched = False
            for key in changed:
                if key.kind in _WORLD_KINDS:
                    touched = True
                    if key.kind in _RULE_KINDS:
                        self._rules_version += 1
                    now = objects.get(key)
                    if now is None:
                        self._index[key.kind].pop(key, None)
                    else:
                        self._index[key.kind][key] = now
            if touched:
                self._rebuild()
        world_ = self._world
        if world_ is None:
            self._clusters.clear()
            return model if model.access is None else replace(model, access=None)
        marker = (self._version, model.listeners, model.clusters)
        if (
            self._last is not None
            and self._last[0] == self._version
            and (self._last[1] is model.listeners and self._last[2] is model.clusters)
        ):
            return replace(model, access=self._access)
        listeners: dict[str, ListenerAccess] = {}
        for lst in model.listeners:
            la = listener_access(world_, lst.port)
            if la is not None:
                listeners[lst.name] = la
        clusters: dict[str, BackendAccess] = {}
        memo: dict[str, tuple[Cluster, int, tuple[Identity, ...], BackendAccess | None]] = {}
        rules = self._rules_version
        for c in model.clusters:
            # A cluster's verdict depends on the rules and on its endpoints' identities:
            # a Pod or EndpointSlice change recomputes only the clusters it touches.
            ids = tuple(world_.backend(e.address, e.port) for e in c.endpoints if e.ready)
            hit = self._clusters.get(c.name)
            if hit is not None and hit[0] is c and hit[1] == rules and hit[2] == ids:
                ba = hit[3]
            else:
                ba = backend_access(world_, c)
            memo[c.name] = (c, rules, ids, ba)
            if ba is not None:
                clusters[c.name] = ba
        self._clusters = memo
        access = Access(listeners, clusters)
        if self._access is not None and self._access == access:
            access = self._access  # same verdicts: the same object (the translator checks identity)
        self._access = access
        self._last = marker
        return replace(model, access=access)

    def _rebuild(self) -> None:
        idx = self._index
        policies = [
            *idx["CiliumNetworkPolicy"].values(),
            *idx["CiliumClusterwideNetworkPolicy"].values(),
        ]
        self._version += 1
        if not policies:
            self._world = None
            return
        namespaces = {
            o.metadata.name: o for o in idx["Namespace"].values() if isinstance(o, Namespace)
        }
        pods = [o for o in idx["Pod"].values() if isinstance(o, Pod)]
        slices = [o for o in idx["EndpointSlice"].values() if isinstance(o, EndpointSlice)]
        world_ = _world(policies, namespaces, pods, slices, self._identities)
        previous = self._world
        if previous is not None and previous.pod_addresses == world_.pod_addresses:
            # Same pod addresses: the collapsed networks (and the work) carry over.
            key = ("pod-networks",)
            if key in previous._memo:
                world_._memo[key] = previous._memo[key]
        self._world = world_
