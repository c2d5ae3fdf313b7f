"""Network policy change -> first request with the new verdict, Kubernetes mode on the
dev cluster (issue #14): the chart installed with helm (Envoy embedded in the agents),
the walkthrough's app behind a Gateway (examples/kubernetes/), a client in the host
namespace (`world`) probing the Gateway's LoadBalancer address back to back. Each trial
creates one of Cilium's example CiliumClusterwideNetworkPolicies through the API server
(one request, timed from just before it) and waits for the first 403 `Access denied`,
then deletes it and waits for the first 200.

    export PROPYLON_DEVCLUSTER_INSTANCE=4; python3 dev.py cluster up --nodes 3
    .venv/bin/python bench/kube_policy_propagation.py [--trials 20] [--uninstall]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from shared_paths import GATEWAY_API  # noqa: E402

from devcluster import build, network  # noqa: E402
from devcluster.cluster import Cluster  # noqa: E402
from propylon.kube import kinds  # noqa: E402
from propylon.kube.api import KubeApi  # noqa: E402

CHART = ROOT / "deploy" / "helm" / "propylon"
EXAMPLES = ROOT / "examples" / "kubernetes"
POLICIES = ROOT / "examples" / "cilium-policies"
HOST = "http-test.mynetwork.local"


def probe(address: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(address, 8080, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": HOST})
        resp = conn.getresponse()
        return resp.status, resp.read()
    except OSError:
        return 0, b""
    finally:
        conn.close()


def until(address: str, status: int, timeout: float = 60.0) -> float:
    start = time.perf_counter()
    while True:
        got, body = probe(address)
        if got == status and (status != 403 or body == b"Access denied\r\n"):
            return (time.perf_counter() - start) * 1000
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"no {status} within {timeout} s")


def install(cluster: Cluster) -> str:
    cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", str(GATEWAY_API / "crd/experimental")
    )
    cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    args = ["upgrade", "--install", "propylon", str(CHART), "-n", "kube-system", "--wait"]
    for value in (
        f"k8sServiceHost={network.HOST_ADDRESS}",
        "k8sServicePort=6443",
        "envoy.enabled=false",
    ):
        args += ["--set", value]
    subprocess.run(
        [str(build.binaries().helm), *args, "--kubeconfig", str(cluster.kubeconfig)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    pool = (EXAMPLES / "00-lb-pool.yaml").read_text()
    cluster.kubectl("apply", "-f", "-", input=pool.replace("198.19.200.0/24", str(network.LB_POOL)))
    for manifest in sorted(EXAMPLES.glob("*.yaml")):
        if manifest.name != "00-lb-pool.yaml":
            cluster.kubectl("apply", "-f", str(manifest))
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        address = cluster.kubectl(
            "get",
            "gateway",
            "example-gateway",
            "-o",
            "jsonpath={.status.addresses[0].value}",
            check=False,
        ).strip()
        if address and probe(address)[0] == 200:
            return address
        time.sleep(0.5)
    raise TimeoutError("the Gateway never answered 200")


async def trials(address: str, cluster: Cluster, n: int) -> list[str]:
    api = KubeApi.connect(cluster.kubeconfig, field_manager="policy-bench")
    rows = []
    try:
        for name in ("external-lockdown", "default-deny"):
            doc: dict[str, Any] = yaml.safe_load((POLICIES / f"{name}.yaml").read_text())
            applied, removed = [], []
            for _ in range(n):
                start = time.perf_counter()
                await api.create(kinds.CLUSTERWIDE_NETWORK_POLICY, doc, "")
                until(address, 403)
                applied.append((time.perf_counter() - start) * 1000)
                start = time.perf_counter()
                await api.delete(kinds.CLUSTERWIDE_NETWORK_POLICY, doc["metadata"]["name"], "")
                until(address, 200)
                removed.append((time.perf_counter() - start) * 1000)
            for label, samples in (("created", applied), ("deleted", removed)):
                s = sorted(samples)
                rows.append(
                    f"| {name} {label} -> first {'403' if label == 'created' else '200'} "
                    f"| {len(s)} | {statistics.mean(s):.1f} ms | {statistics.median(s):.1f} ms "
                    f"| {max(s):.1f} ms |"
                )
    finally:
        await api.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--uninstall", action="store_true")
    args = parser.parse_args()
    cluster = Cluster.existing()
    address = install(cluster)
    try:
        rows = asyncio.run(trials(address, cluster, args.trials))
    finally:
        if args.uninstall:
            cluster.kubectl("delete", "-f", str(EXAMPLES), "--ignore-not-found", check=False)
            subprocess.run(
                [
                    str(build.binaries().helm),
                    "uninstall",
                    "propylon",
                    "-n",
                    "kube-system",
                    "--wait",
                    "--kubeconfig",
                    str(cluster.kubeconfig),
                ],
                check=False,
                capture_output=True,
                timeout=600,
            )
    print("| change (API request -> answer from the host) | trials | mean | p50 | max |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
