"""NACK isolation: when Envoy rejects a configuration, find the objects it came from.

Everything Propylon knows Envoy would reject is refused before it is sent
(`propylon.gatewayapi.envoyrules`). If Envoy still rejects an update, the rejected
configuration is bisected offline with `envoy --mode validate` (the same binary, the
same translation as static resources): first over the routes (HTTPRoute, GRPCRoute
objects), then, if the rest still fails without any route, over the Gateways. The
objects found are withheld from what Envoy gets, with Envoy's message in their status,
until they change; everything else keeps flowing. A rejected update never blocks later
valid ones, because the offending objects are no longer in them."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path

from propylon import model as m
from propylon.envoy import Translator, XdsResources, static_bootstrap
from propylon.resources.meta import ObjectKey

log = logging.getLogger("propylon.isolation")

#: Validates a translation; returns Envoy's complaint, or None if it accepts it.
Validator = Callable[[XdsResources], Awaitable[str | None]]
_ROUTE_KINDS = ("HTTPRoute", "GRPCRoute")


def route_key(route_name: str) -> ObjectKey | None:
    """The object a model route came from (`HTTPRoute/ns/name/rule/i/match/j`)."""
    parts = route_name.split("/")
    if len(parts) >= 3 and parts[0] in _ROUTE_KINDS:
        return ObjectKey(parts[0], parts[1], parts[2])
    return None


def gateway_key(listener_name: str) -> ObjectKey:
    """The Gateway a model listener belongs to (`ns/gateway/port`)."""
    ns, name, _ = listener_name.split("/", 2)
    return ObjectKey("Gateway", ns, name)


def route_keys(model: m.Model) -> list[ObjectKey]:
    keys = {
        key
        for listener in model.listeners
        for vhosts in _vhost_sets(listener)
        for vh in vhosts
        for route in vh.routes
        if (key := route_key(route.name)) is not None
    }
    return sorted(keys)


def gateway_keys(model: m.Model) -> list[ObjectKey]:
    return sorted({gateway_key(li.name) for li in model.listeners})


def _vhost_sets(listener: m.Listener) -> Iterable[tuple[m.VirtualHost, ...]]:
    if listener.http is not None:
        yield listener.http
    for chain in listener.https:
        yield chain.virtual_hosts


def without(model: m.Model, withheld: Iterable[ObjectKey]) -> m.Model:
    """`model` less the routes and Gateways in `withheld` (a new model with no delta
    hint: a translator compares it by identity)."""
    out = set(withheld)
    if not out:
        return model

    def vhosts(items: tuple[m.VirtualHost, ...]) -> tuple[m.VirtualHost, ...]:
        result = []
        for vh in items:
            routes = tuple(r for r in vh.routes if route_key(r.name) not in out)
            result.append(
                vh if len(routes) == len(vh.routes) else dataclasses.replace(vh, routes=routes)
            )
        return tuple(result)

    listeners = []
    for li in model.listeners:
        if gateway_key(li.name) in out:
            continue
        http = vhosts(li.http) if li.http is not None else None
        https = tuple(
            dataclasses.replace(t, virtual_hosts=vhosts(t.virtual_hosts)) for t in li.https
        )
        listeners.append(dataclasses.replace(li, http=http, https=https))
    return dataclasses.replace(model, listeners=tuple(listeners), delta=None)


async def _culprits(
    keys: Sequence[ObjectKey], fails: Callable[[Sequence[ObjectKey]], Awaitable[str | None]]
) -> dict[ObjectKey, str]:
    """The keys that make `fails` true, by bisection (each one that fails on its own;
    a set that fails only together is returned whole)."""
    message = await fails(keys)
    if message is None:
        return {}
    if len(keys) == 1:
        return {keys[0]: message}
    half = len(keys) // 2
    found = {**await _culprits(keys[:half], fails), **await _culprits(keys[half:], fails)}
    return found or dict.fromkeys(keys, message)


async def find_rejected(
    model: m.Model, options: m.ProxyOptions, validate: Validator
) -> dict[ObjectKey, str]:
    """The route objects (else Gateways) whose configuration Envoy rejects, with
    Envoy's message; empty when the whole configuration validates (nothing to isolate
    offline)."""

    async def check(mdl: m.Model) -> str | None:
        # Off the event loop: translating thousands of routes takes a while.
        return await validate(await asyncio.to_thread(Translator().translate, mdl, options))

    if await check(model) is None:
        return {}
    routes = route_keys(model)

    async def fails_routes(keep: Sequence[ObjectKey]) -> str | None:
        return await check(without(model, set(routes) - set(keep)))

    if await fails_routes(()) is None:
        return await _culprits(routes, fails_routes)
    bare = without(model, routes)
    gateways = gateway_keys(model)

    async def fails_gateways(keep: Sequence[ObjectKey]) -> str | None:
        return await check(without(bare, set(gateways) - set(keep)))

    return await _culprits(gateways, fails_gateways)


def envoy_validator(binary: Path, timeout: float = 60.0) -> Validator:
    """Runs `envoy --mode validate` on the static form of a translation."""

    async def validate(resources: XdsResources) -> str | None:
        with tempfile.TemporaryDirectory(prefix="propylon-validate-") as tmp:
            config = Path(tmp) / "config.json"
            config.write_text(json.dumps(static_bootstrap(resources)))
            proc = await asyncio.create_subprocess_exec(
                str(binary),
                "--mode",
                "validate",
                "-c",
                str(config),
                "--log-level",
                "error",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), timeout)
            except (TimeoutError, asyncio.CancelledError) as exc:
                proc.kill()  # never leave it running (a stop cancels the bisection)
                await proc.wait()
                if isinstance(exc, asyncio.CancelledError):
                    raise
                return None
        if proc.returncode == 0:
            return None
        lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.strip()]
        return _summary(lines)

    return validate


def _summary(lines: list[str]) -> str:
    """Envoy's own words, without its log prefixes."""
    for line in lines:
        if "error initializing configuration" in line or "rejected" in line.lower():
            return line.split("] ", 1)[-1].strip()
    return lines[-1].split("] ", 1)[-1].strip() if lines else "rejected by Envoy"
