"""The node's answers on `healthCheckNodePort`s, as kube-proxy gives them (there is none
here, as with Cilium's kube-proxy replacement): for every LoadBalancer Service with
`externalTrafficPolicy: Local` the agent listens on `0.0.0.0:<healthCheckNodePort>` and
answers `/healthz`, which a cloud load balancer polls to choose the nodes it sends to.

- A Gateway's generated Service has no backend pods; the node serves it when its Envoy is
  up and has accepted a configuration holding that Gateway, so the answer is 200 exactly
  then, 503 otherwise (Cilium answers the same for every node running Envoy).
- Any other Service: 200 when this node has a ready endpoint of it, 503 otherwise.

`health_checks` (pure) says which ports answer for what; `HealthCheckPorts` (the shell)
keeps one listening socket per port and asks a callback at every request, so a change
of Envoy's state shows in the very next answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from propylon.gatewayapi.gateway import OWNING_GATEWAY_LABEL
from propylon.gatewayapi.names import name_part
from propylon.resources import EndpointSlice, ObjectKey, Resource, Service

log = logging.getLogger("propylon.healthcheck")

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
BIND_RETRY_S = 2.0


@dataclass(frozen=True)
class HealthCheck:
    """What one healthCheckNodePort answers for."""

    service: ObjectKey
    gateway: ObjectKey | None  # set for a Gateway's generated Service
    local_endpoints: int = 0  # ready endpoints on this node (other Services)


def health_checks(objects: Iterable[Resource], node_name: str) -> dict[int, HealthCheck]:
    """healthCheckNodePort -> what it answers for, from the Services and EndpointSlices."""
    local: dict[ObjectKey, int] = {}
    services: list[Service] = []
    for obj in objects:
        if isinstance(obj, Service):
            services.append(obj)
        elif isinstance(obj, EndpointSlice):
            name = obj.metadata.labels.get(SERVICE_NAME_LABEL)
            if not name:
                continue
            key = ObjectKey("Service", obj.metadata.namespace, name)
            count = sum(1 for e in obj.endpoints if e.node_name == node_name and e.ready)
            local[key] = local.get(key, 0) + count
    out: dict[int, HealthCheck] = {}
    for svc in services:
        spec = svc.spec
        port = spec.health_check_node_port
        if spec.type != "LoadBalancer" or spec.external_traffic_policy != "Local" or not port:
            continue
        owner = svc.metadata.labels.get(OWNING_GATEWAY_LABEL)
        gateway = ObjectKey("Gateway", svc.metadata.namespace, owner) if owner else None
        out[port] = HealthCheck(svc.key, gateway, 0 if gateway else local.get(svc.key, 0))
    return out


def gateway_node_ports(services: Iterable[Resource]) -> tuple[tuple[str, int], ...]:
    """(Envoy listener name, node port) for the ports of the Gateways' generated Services
    that the API server gave a node port (LoadBalancer and NodePort): the node's Envoy
    listens on them too, as kube-proxy would forward them."""
    out: list[tuple[str, int]] = []
    for svc in services:
        if not isinstance(svc, Service):
            continue
        owner = svc.metadata.labels.get(OWNING_GATEWAY_LABEL)
        if not owner or svc.spec.type not in ("LoadBalancer", "NodePort"):
            continue
        prefix = f"{name_part(svc.metadata.namespace)}/{name_part(owner)}"
        out.extend(
            (f"{prefix}/{p.port}{'/udp' if p.protocol == 'UDP' else ''}", p.node_port)
            for p in svc.spec.ports
            if p.node_port
        )
    return tuple(sorted(out))


def answer(check: HealthCheck, serving: bool) -> tuple[int, str]:
    """The status code and JSON body, in kube-proxy's shape."""
    endpoints = (1 if serving else 0) if check.gateway else check.local_endpoints
    body = {
        "service": {"namespace": check.service.namespace, "name": check.service.name},
        "localEndpoints": endpoints,
        "serviceProxyHealthy": True,
    }
    return (200 if endpoints > 0 else 503), json.dumps(body)


class HealthCheckPorts:
    """One listener per healthCheckNodePort on this node."""

    def __init__(self, serving: Callable[[ObjectKey], bool], *, host: str = "0.0.0.0") -> None:
        self._serving = serving  # Gateway key -> is this node's Envoy serving it now
        self._host = host
        self._checks: dict[int, HealthCheck] = {}
        self._servers: dict[int, asyncio.Server] = {}
        self._retry: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def ports(self) -> frozenset[int]:
        return frozenset(self._servers)

    async def update(self, checks: Mapping[int, HealthCheck]) -> None:
        self._checks = dict(checks)
        for port in set(self._servers) - set(checks):
            server = self._servers.pop(port)
            server.close()
            log.info("health check port %d closed", port)
        for port in sorted(set(checks) - set(self._servers)):
            try:
                self._servers[port] = await asyncio.start_server(
                    self._handle_for(port), self._host, port, reuse_address=True
                )
                log.info("health check port %d for Service %s", port, checks[port].service)
            except OSError as exc:
                log.error(
                    "health check port %d for %s: %s (retrying every %.0f s)",
                    port,
                    checks[port].service,
                    exc,
                    BIND_RETRY_S,
                )
        if set(checks) - set(self._servers) and self._retry is None:
            # A port taken by something else on the node: keep trying, the load balancer
            # treats the node as failing meanwhile (connection refused).
            self._retry = asyncio.get_running_loop().call_later(BIND_RETRY_S, self._rebind)

    def _rebind(self) -> None:
        self._retry = None
        task = asyncio.get_running_loop().create_task(self.update(self._checks))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        for task in self._tasks:
            task.cancel()
        for server in self._servers.values():
            server.close()
        for server in self._servers.values():
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()

    def _handle_for(
        self, port: int
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(
                OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError
            ):
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
                check = self._checks.get(port)
                if check is None:
                    code, body = 503, "{}"
                else:
                    serving = check.gateway is not None and self._serving(check.gateway)
                    code, body = answer(check, serving)
                reason = "OK" if code == 200 else "Service Unavailable"
                data = body.encode()
                writer.write(
                    f"HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
            writer.close()

        return handle
