"""Why one request from one address to one Gateway was allowed or denied.

The same verdicts as the engine's (`World.decide`), plus the route lookup a request
goes through, in words: each step names the policy and rule that decided."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import re2

from propylon.model import Forward, HttpRule, Listener, Model, PathMatchType, Route, VirtualHost
from propylon.policy.engine import World, endpoint_verdicts
from propylon.policy.identity import INGRESS


@dataclass(frozen=True)
class Request:
    source: str  # the client's address
    gateway: str  # "namespace/name"
    path: str = "/"
    host: str = ""
    method: str = "GET"
    port: int | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class Explanation:
    allowed: bool
    status: int | None  # what the client gets (None: a connection failure)
    steps: list[str] = field(default_factory=list)


def http_matches(rule: HttpRule, req: Request) -> bool:
    def full(pattern: str | None, value: str) -> bool:
        return pattern is None or re2.fullmatch(pattern, value) is not None

    if not full(rule.method, req.method) or not full(rule.path, req.path):
        return False
    if not full(rule.host, req.host):
        return False
    have = {k.lower(): v for k, v in req.headers}
    for name, value in rule.headers:
        if name not in have or (value is not None and have[name] != value):
            return False
    return True


def _listener(model: Model, req: Request) -> Listener | None:
    prefix = f"{req.gateway}/"
    found = [lst for lst in model.listeners if lst.name.startswith(prefix)]
    if req.port is not None:
        found = [lst for lst in found if lst.port == req.port]
    return found[0] if len(found) == 1 or (found and req.port is not None) else None


def _host_matches(pattern: str, host: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and host != pattern[2:]
    return host == pattern


def _vhost(vhosts: Sequence[VirtualHost], host: str) -> VirtualHost | None:
    host = host.split(":")[0].lower().rstrip(".")
    best: tuple[int, VirtualHost] | None = None
    for vh in vhosts:
        for pattern in vh.hostnames:
            if _host_matches(pattern, host):
                rank = (
                    0
                    if pattern == "*"
                    else (1 if pattern.startswith("*") else 2) * 1000 + len(pattern)
                )
                if best is None or rank > best[0]:
                    best = (rank, vh)
    return best[1] if best else None


def _route(vh: VirtualHost, req: Request) -> Route | None:
    path = req.path.split("?")[0]
    have = {k.lower(): v for k, v in req.headers}
    for r in vh.routes:
        pm = r.match.path
        if pm.type is PathMatchType.EXACT and path != pm.value:
            continue
        if pm.type is PathMatchType.PREFIX:
            base = pm.value.rstrip("/")
            if not (path == base or path.startswith(base + "/") or pm.value == "/"):
                continue
        if pm.type is PathMatchType.REGEX and re2.fullmatch(pm.value, path) is None:
            continue
        if r.match.method is not None and r.match.method != req.method:
            continue
        if any(have.get(h.name.lower()) != h.value for h in r.match.headers):
            continue
        return r
    return None


def explain(model: Model, world: World | None, req: Request) -> Explanation:
    lst = _listener(model, req)
    if lst is None:
        return Explanation(False, None, [f"no single listener of Gateway {req.gateway} matches"])
    steps = [f"listener {lst.name} ({lst.address}:{lst.port})"]
    if world is None:
        steps.append("no CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy exists: allowed")
        return Explanation(True, 200, steps)
    client = world.source(req.source)
    v = world.decide("ingress", INGRESS, client, lst.port)
    steps.append(f"client -> ingress: {v.why}")
    if not v.allowed:
        return Explanation(False, 403, [*steps, "answer: 403 Access denied"])
    if v.http is not None:
        hit = [h for h in v.http if http_matches(h, req)]
        steps.append(
            f"  L7: the request {'matches' if hit else 'matches none of'} the allowed HTTP rules"
        )
        if not hit:
            return Explanation(False, 403, [*steps, "answer: 403 Access denied"])
    vhosts: tuple[VirtualHost, ...] = lst.http or ()
    if not vhosts:
        for term in lst.https:
            vhosts += term.virtual_hosts
    vh = _vhost(vhosts, req.host or lst.address)
    route = _route(vh, req) if vh is not None else None
    if route is None:
        return Explanation(False, 404, [*steps, "no route matches: 404 (Envoy)"])
    steps.append(f"route {route.name}")
    if not isinstance(route.action, Forward):
        return Explanation(True, None, [*steps, "the route answers itself (no backend)"])
    clusters = {c.name: c for c in model.clusters}
    worst: int | None = 200
    any_ok = False
    for b in route.action.backends:
        c = clusters.get(b.cluster or "")
        if c is None:
            steps.append(f"backend {b.cluster}: not resolved (500)")
            continue
        verdicts = endpoint_verdicts(world, c)
        if not verdicts:
            steps.append(f"backend {c.name}: no ready endpoints (503)")
            worst = 503
        for ev in verdicts:
            steps.append(
                f"backend {c.name} endpoint {ev.address}:{ev.port} ({ev.backend.describe()})"
            )
            steps.append(f"  ingress -> backend: {ev.egress.why}")
            steps.append(f"  backend <- ingress: {ev.ingress.why}")
            l7 = [x for x in (ev.egress.http, ev.ingress.http) if x is not None]
            ok = ev.admitted and all(any(http_matches(h, req) for h in hs) for hs in l7)
            if ev.admitted and l7:
                steps.append(f"  L7: the request {'passes' if ok else 'fails'} the HTTP rules")
            any_ok = any_ok or ok
    access = model.access.clusters if model.access is not None else {}
    for b in route.action.backends:
        ba = access.get(b.cluster or "")
        if ba is None:
            continue
        refused = ba.require and not all(any(http_matches(h, req) for h in hs) for hs in ba.require)
        if ba.deny_all or refused:
            worst = 403
        elif b.cluster and len(ba.excluded) == len(clusters[b.cluster].endpoints):
            worst = 503
    if worst == 200 and not any_ok:
        worst = 503
    answer = {200: "allowed", 403: "403 Access denied", 503: "503 (no admitted endpoint)"}
    steps.append(f"answer: {answer.get(worst or 0, str(worst))}")
    return Explanation(worst == 200, worst, steps)
