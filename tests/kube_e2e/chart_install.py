"""The chart installed on the dev cluster for one test module: the Gateway API CRDs, the
propylon chart (`helm upgrade --install`, this cluster's API server plus the module's
values), this instance's LoadBalancer pool, the walkthrough's example manifests and the
module's own objects if asked; all removed again, in reverse, when the module is done.

    @pytest.fixture(scope="module")
    def setup(devcluster):
        with installed(devcluster, ["envoy.enabled=false"], examples=True):
            yield ...
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from shared_paths import GATEWAY_API

from devcluster import build, network

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "kubernetes"
CHART = REPO / "deploy" / "helm" / "propylon"
POOL_EXAMPLE = "00-lb-pool.yaml"


def helm(cluster: Any, *args: str) -> str:
    argv = [str(build.binaries().helm), *args, "--kubeconfig", str(cluster.kubeconfig)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"helm {' '.join(args)}: {done.stderr}"
    return done.stdout


def chart_values(values: Sequence[str] = ()) -> list[str]:
    """`--set` values: the cluster's API server (no kube-proxy: pods reach it directly),
    then `values`."""
    return [f"k8sServiceHost={network.HOST_ADDRESS}", "k8sServicePort=6443", *values]


def apply_gateway_api_crds(cluster: Any) -> None:
    """The Gateway API CRDs, unless a newer release's are there (an upstream conformance
    run on this cluster installs v1.6.3's, which the API server will not downgrade)."""
    if not cluster.kubectl("get", "crd", "gateways.gateway.networking.k8s.io", check=False):
        cluster.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            str(GATEWAY_API / "crd/experimental"),
        )
    cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")


@contextlib.contextmanager
def installed(
    cluster: Any,
    values: Sequence[str] = (),
    *,
    pool: bool = True,
    examples: bool = False,
    manifests: str = "",
) -> Iterator[None]:
    """The chart with `values`; `pool`: the example LB-IPAM pool with this instance's
    range; `examples`: the walkthrough's other manifests; `manifests`: YAML of the
    module's own objects."""
    apply_gateway_api_crds(cluster)
    args = ["upgrade", "--install", "propylon", str(CHART), "-n", "kube-system"]
    for value in chart_values(values):
        args += ["--set", value]
    helm(cluster, *args, "--wait", "--timeout", "3m")
    if pool or examples:
        # The example's pool is instance 0's; any instance gets the block routed to it.
        text = (EXAMPLES / POOL_EXAMPLE).read_text()
        cluster.kubectl(
            "apply", "-f", "-", input=text.replace("198.19.200.0/24", str(network.LB_POOL))
        )
    if examples:
        for manifest in sorted(EXAMPLES.glob("*.yaml")):
            if manifest.name != POOL_EXAMPLE:  # applied above, with this instance's pool
                cluster.kubectl("apply", "-f", str(manifest))
    if manifests:
        cluster.kubectl("apply", "-f", "-", input=manifests)
    try:
        yield
    finally:
        if manifests:
            cluster.kubectl("delete", "-f", "-", "--ignore-not-found", input=manifests, check=False)
        if examples:
            cluster.kubectl("delete", "-f", str(EXAMPLES), "--ignore-not-found", check=False)
        helm(cluster, "uninstall", "propylon", "-n", "kube-system", "--wait")
