"""Running `propylon operator` in-process against the test control plane."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import yaml
from kube_controlplane import ControlPlane
from shared_paths import REPO

from propylon.kube.api import KubeApi
from propylon.kube.leader import LeaseConfig
from propylon.runtime.operator import Operator, OperatorOptions

WALKTHROUGH = REPO / "examples" / "walkthrough"
FAST_LEASE = {"lease_duration": 2.0, "renew_deadline": 1.5, "retry_period": 0.3}


@contextlib.asynccontextmanager
async def running_operator(
    kubeconfig: Path,
    namespace: str,
    *,
    identity: str = "op-1",
    require_agent_ack: bool = False,
    leader_elect: bool = True,
) -> AsyncIterator[Operator]:
    api = KubeApi.connect(kubeconfig, field_manager="propylon-operator")
    options = OperatorOptions(
        namespace=namespace,
        leader_elect=leader_elect,
        lease=LeaseConfig(namespace, identity=identity, **FAST_LEASE),
        require_agent_ack=require_agent_ack,
    )
    operator = Operator(options, api=api)
    task = asyncio.create_task(operator.serve(handle_signals=False))
    try:
        yield operator
    finally:
        operator.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        await api.close()


def walkthrough_documents(backend_ip: str = "198.18.17.10") -> list[dict[str, Any]]:
    """The walkthrough's manifests as a cluster takes them: EndpointSlices may not
    point at loopback, so the demo backends' slices point at a pod address."""
    docs: list[dict[str, Any]] = []
    for path in sorted(WALKTHROUGH.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            if doc.get("kind") == "EndpointSlice":
                for endpoint in doc.get("endpoints") or ():
                    endpoint["addresses"] = [backend_ip]
            docs.append(doc)
    return docs


def to_yaml(docs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(docs)


POOL = """apiVersion: cilium.io/v2
kind: CiliumLoadBalancerIPPool
metadata:
  name: {name}
spec:
  blocks:
    - cidr: {cidr}
"""


@contextlib.contextmanager
def pool_and_objects(
    controlplane: ControlPlane, manifests: str, *, pool: str, cidr: str, gateway_class: str
) -> Iterator[None]:
    """An LB-IPAM pool and the test's manifests, applied; on the way out the class and the
    pool are deleted (the namespace fixture deletes the namespaced objects)."""
    controlplane.kubectl("apply", "-f", "-", input=POOL.format(name=pool, cidr=cidr))
    controlplane.kubectl("apply", "-f", "-", input=manifests)
    try:
        yield
    finally:
        controlplane.kubectl("delete", "gatewayclass", gateway_class, "--wait=false", check=False)
        controlplane.kubectl("delete", "ciliumloadbalancerippool", pool, check=False)
