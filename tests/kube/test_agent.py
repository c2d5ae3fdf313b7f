"""`propylon agent` with a real Envoy, against a real API server, beside the operator:
Programmed follows what the agent's Envoy accepted, and a route change made through
the API server is served by Envoy shortly after."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kube_controlplane import ControlPlane, free_port
from kube_eventually import eventually
from operators import POOL, pool_and_objects, running_operator

from propylon.dataplane import EnvoySupervisor
from propylon.kube import kinds
from propylon.kube.api import KubeApi
from propylon.runtime.agent import Agent, AgentOptions

pytestmark = pytest.mark.e2e

OBJECTS = """apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: {ns}-class}}
spec: {{controllerName: io.cilium/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: {ns}}}
spec:
  gatewayClassName: {ns}-class
  listeners: [{{name: web, protocol: HTTP, port: {port}}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: redirect, namespace: {ns}}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [a.example]
  rules:
    - filters:
        - type: RequestRedirect
          requestRedirect: {{hostname: elsewhere.example, statusCode: 302}}
"""


@contextlib.asynccontextmanager
async def running_agent(
    kubeconfig: Path, namespace: str, state: Path, *, xds_socket: Path | None = None
) -> AsyncIterator[Agent]:
    api = KubeApi.connect(kubeconfig, field_manager="propylon-agent")
    agent = Agent(
        AgentOptions(
            node_name="node-t",
            namespace=namespace,
            state_dir=state,
            admin_port=free_port(),
            envoy_mode="external" if xds_socket else "embedded",
            xds_socket=xds_socket,
        ),
        api=api,
    )
    task = asyncio.create_task(agent.serve(handle_signals=False))
    try:
        yield agent
    finally:
        agent.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 15)
        await api.close()


def _programmed(gw: dict[str, Any] | None) -> str | None:
    for cond in ((gw or {}).get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Programmed":
            return str(cond.get("status"))
    return None


async def test_agent_serves_what_the_api_server_says(
    api: KubeApi, controlplane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    port = free_port()
    # A loopback pool: the address is usable on this host without touching interfaces.
    with pool_and_objects(
        controlplane,
        OBJECTS.format(ns=namespace, port=port),
        pool=f"{namespace}-pool",
        cidr="127.31.0.0/24",
        gateway_class=f"{namespace}-class",
    ):
        async with (
            running_operator(controlplane.kubeconfig, namespace, require_agent_ack=True),
            running_agent(controlplane.kubeconfig, namespace, tmp_path / "agent") as agent,
        ):

            async def programmed() -> bool:
                gw = await api.get(kinds.GATEWAY, "gw", namespace)
                return _programmed(gw) == "True"

            await eventually(programmed, timeout=30, what="Programmed True from the agent")
            url = f"http://127.31.0.1:{port}/"
            async with httpx.AsyncClient(timeout=2) as client:

                async def redirected(host: str) -> bool:
                    with contextlib.suppress(httpx.HTTPError):
                        resp = await client.get(url, headers={"Host": host})
                        return resp.status_code == 302
                    return False

                assert await eventually(lambda: redirected("a.example"), what="302 via Envoy")
                resp = await client.get(url, headers={"Host": "a.example"})
                assert resp.headers["location"].startswith("http://elsewhere.example")
                # An unknown host: Envoy's own 404, the listener is Envoy's.
                resp = await client.get(url, headers={"Host": "nobody.example"})
                assert resp.status_code == 404

                # A change through the API server reaches Envoy.
                await api.patch(
                    kinds.HTTP_ROUTE,
                    "redirect",
                    {"spec": {"hostnames": ["b.example"]}},
                    namespace=namespace,
                )
                await eventually(lambda: redirected("b.example"), what="new hostname served")

                # Envoy killed: the supervisor restarts it and it gets the config again.
                envoy = agent._envoy
                assert envoy is not None and envoy.pid is not None
                os.kill(envoy.pid, signal.SIGKILL)
                await eventually(lambda: envoy.restarts >= 1, what="Envoy restarted")
                await eventually(
                    lambda: redirected("b.example"),
                    timeout=20,
                    what="served again after the restart",
                )


async def test_envoy_keeps_serving_while_its_external_agent_restarts(
    api: KubeApi, controlplane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    """envoy.enabled: Envoy is its own process (the Envoy DaemonSet) and connects to
    the agent's socket; an agent restart never interrupts traffic."""
    pool = f"{namespace}-pool"
    port = free_port()
    controlplane.kubectl("apply", "-f", "-", input=POOL.format(name=pool, cidr="127.34.0.0/24"))
    controlplane.kubectl("apply", "-f", "-", input=OBJECTS.format(ns=namespace, port=port))
    socket = tmp_path / "xds.sock"
    envoy = EnvoySupervisor(
        binary=None,
        xds_address=f"unix:{socket}",
        admin_address=f"127.0.0.1:{free_port()}",
        node_id="node-t",
        workdir=tmp_path / "envoy",
    )
    url = f"http://127.34.0.1:{port}/"
    failures = 0
    answers = 0
    stop = asyncio.Event()

    async def traffic(client: httpx.AsyncClient) -> None:
        nonlocal failures, answers
        while not stop.is_set():
            try:
                resp = await client.get(url, headers={"Host": "a.example"})
                answers += 1
                failures += resp.status_code != 302
            except httpx.HTTPError:
                failures += 1
            await asyncio.sleep(0.01)

    try:
        async with running_operator(controlplane.kubeconfig, namespace, require_agent_ack=True):
            async with running_agent(
                controlplane.kubeconfig, namespace, tmp_path / "agent", xds_socket=socket
            ):
                await envoy.start()

                async def programmed() -> bool:
                    gw = await api.get(kinds.GATEWAY, "gw", namespace)
                    return _programmed(gw) == "True"

                await eventually(programmed, timeout=30, what="Programmed via external Envoy")
                async with httpx.AsyncClient(timeout=2) as client:

                    async def serving() -> bool:
                        with contextlib.suppress(httpx.HTTPError):
                            r = await client.get(url, headers={"Host": "a.example"})
                            return r.status_code == 302
                        return False

                    await eventually(serving, what="traffic through the external Envoy")
            # The agent is gone; Envoy keeps its configuration.
            async with httpx.AsyncClient(timeout=2) as client:
                load = asyncio.create_task(traffic(client))
                await eventually(lambda: answers >= 20, what="traffic without an agent")
                async with running_agent(
                    controlplane.kubeconfig, namespace, tmp_path / "agent", xds_socket=socket
                ) as agent:
                    await eventually(
                        lambda: bool(agent._xds and agent._xds.nodes()),
                        timeout=30,
                        what="Envoy reconnected to the new agent",
                    )
                    seen = answers
                    await eventually(lambda: answers >= seen + 20, what="traffic after")
                stop.set()
                await load
        assert failures == 0 and answers > 40
    finally:
        await envoy.stop()
        controlplane.kubectl("delete", "gatewayclass", f"{namespace}-class", check=False)
        controlplane.kubectl("delete", "ciliumloadbalancerippool", pool, check=False)


async def test_agent_serves_the_address_the_operator_wrote(
    api: KubeApi, controlplane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    """The address in the Gateway's status (the operator's LB-IPAM choice) is the one
    the agent serves; it picks none of its own (the operator's and the agents' choices
    would differ, and listeners would swap addresses, which Envoy rejects), and a write
    that changes nothing but the status is enough."""
    port = free_port()
    with pool_and_objects(
        controlplane,
        OBJECTS.format(ns=namespace, port=port),
        pool=f"{namespace}-pool",
        cidr="127.36.0.0/24",
        gateway_class=f"{namespace}-class",
    ):
        async with (
            running_agent(controlplane.kubeconfig, namespace, tmp_path / "agent"),
            httpx.AsyncClient(timeout=2) as client,
        ):

            async def answers(address: str) -> bool:
                with contextlib.suppress(httpx.HTTPError):
                    r = await client.get(f"http://{address}:{port}/", headers={"Host": "a.example"})
                    return r.status_code == 302
                return False

            # No operator: the agent serves the Gateway once an address is written.
            await api.patch(
                kinds.GATEWAY,
                "gw",
                {"status": {"addresses": [{"type": "IPAddress", "value": "127.36.0.7"}]}},
                namespace=namespace,
                sub="status",
            )
            await eventually(lambda: answers("127.36.0.7"), what="the written address")
            assert not await answers("127.36.0.1"), "the agent chose an address itself"
