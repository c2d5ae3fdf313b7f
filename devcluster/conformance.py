"""Run the upstream Gateway API conformance suite (conformance/upstream, unmodified) against
Propylon installed by its Helm chart on the dev cluster.

    python3 dev.py conformance [--run-test NAME | --test-run PATTERN]
                               [--features declared|all|core] [--report PATH]

Steps: build the suite (Go test binary) and the cluster's binaries if needed; start the
cluster unless one runs; install the Gateway API CRDs of the suite's release (experimental
channel, from the Go module cache: `go mod download sigs.k8s.io/gateway-api@VERSION`);
`helm upgrade --install` Propylon; run the suite with the class, profiles and supported
features; the suite writes the ConformanceReport.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from devcluster import build, network
from devcluster.cluster import API_PORT, REPO, Cluster, run_dir

GATEWAY_API = "v1.6.3"
GATEWAY_CLASS = "cilium"
PROFILES = ("GATEWAY-HTTP", "GATEWAY-GRPC", "GATEWAY-TLS", "GATEWAY-TCP", "GATEWAY-UDP")
# The core features of those profiles (suite/profiles.go): what --core-only declares.
# Without any feature flag the suite would read the GatewayClass's supportedFeatures.
CORE_FEATURES = (
    "Gateway",
    "ReferenceGrant",
    "HTTPRoute",
    "GRPCRoute",
    "TLSRoute",
    "TCPRoute",
    "UDPRoute",
)
REPOSITORY = "propylon/propylon"


def gateway_api_crds(version: str = GATEWAY_API, channel: str = "experimental") -> Path:
    """The CRD folder of a Gateway API release, from the Go module cache."""
    done = subprocess.run(
        ["go", "mod", "download", "-json", f"sigs.k8s.io/gateway-api@{version}"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO / "conformance" / "upstream",
    )
    return Path(json.loads(done.stdout)["Dir"]) / "config" / "crd" / channel


def _version() -> str:
    from importlib.metadata import version

    return version("propylon")


BUNDLE_VERSION = "gateway.networking.k8s.io/bundle-version"


def remove_other_releases_crds(cluster: Cluster, keep: Path) -> None:
    """Delete the Gateway API CRDs of another release that this one does not replace
    (e.g. v1.4.1's XListenerSet): the suite refuses a cluster whose Gateway API CRDs
    carry more than one bundle version. Their objects go with them."""
    ours = {
        doc["metadata"]["name"]
        for path in keep.glob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition"
    }
    listed = json.loads(cluster.kubectl("get", "crd", "-o", "json"))["items"]
    for crd in listed:
        meta = crd["metadata"]
        version = (meta.get("annotations") or {}).get(BUNDLE_VERSION)
        if version and version != GATEWAY_API and meta["name"] not in ours:
            print(f"conformance: deleting CRD {meta['name']} (Gateway API {version})")
            cluster.kubectl("delete", "crd", meta["name"], "--wait=true")


def install(cluster: Cluster, values: list[str]) -> None:
    binaries = build.binaries()
    crds = gateway_api_crds()
    remove_other_releases_crds(cluster, crds)
    # -k: the release folder is a kustomization (its kustomization.yaml is no object)
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(crds))
    pool = {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumLoadBalancerIPPool",
        "metadata": {"name": "conformance"},
        "spec": {"blocks": [{"cidr": str(network.LB_POOL)}]},
    }
    argv = [
        str(binaries.helm),
        "upgrade",
        "--install",
        "propylon",
        str(REPO / "deploy" / "helm" / "propylon"),
        "--namespace",
        "kube-system",
        "--kubeconfig",
        str(cluster.kubeconfig),
        "--set",
        f"k8sServiceHost={network.HOST_ADDRESS}",
        "--set",
        f"k8sServicePort={API_PORT}",
        "--wait",
        "--timeout",
        "5m",
    ]
    for value in values:
        argv += ["--set", value]
    subprocess.run(argv, check=True)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pool))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 dev.py conformance")
    parser.add_argument("--run-test", default="", help="one test by name")
    parser.add_argument(
        "--features",
        choices=("declared", "all", "core"),
        default="declared",
        help="declared: what the GatewayClass's status.supportedFeatures claims (the"
        " report; CI); all: every feature but Mesh's, claimed or not; core: the profiles'"
        " core features only",
    )
    parser.add_argument(
        "--report",
        type=Path,
        default=REPO / "conformance" / f"propylon-{GATEWAY_API}-report.yaml",
    )
    parser.add_argument("--set", action="append", default=[], help="a chart value")
    parser.add_argument(
        "--skip-tests", default="", help="comma-separated test names the suite skips"
    )
    parser.add_argument(
        "--test-run",
        default="",
        help="a Go -test.run pattern over the suite's tests (TestConformance/<ShortName>),"
        " e.g. 'TestConformance/^(TCPRoute|UDPRoute)': several tests in one run",
    )
    args = parser.parse_args(argv)

    binaries = build.ensure_built(conformance=True)
    cluster = Cluster.existing()
    started_here = not cluster.is_running()
    if started_here:
        cluster = Cluster(run_dir(), node_count=2)
        cluster.up()
    try:
        install(cluster, args.set)
        flags = [
            f"-gateway-class={GATEWAY_CLASS}",
            f"-conformance-profiles={','.join(PROFILES)}",
            f"-organization={REPOSITORY.split('/')[0]}",
            f"-project={REPOSITORY.split('/')[1]}",
            f"-url=https://github.com/{REPOSITORY}",
            f"-version={_version()}",
            f"-contact=https://github.com/{REPOSITORY}",
            f"-report-output={args.report}",
            "-cleanup-base-resources=false",
            # GatewayStaticAddresses: one address of the cluster's LB pool, one outside
            # every pool (Propylon: AddressNotUsable).
            f"-usable-address={network.LB_POOL[250]}",
            f"-unusable-address={network.LB_POOL.network_address + 256 + 250}",
            # Each node's Envoy converges on its own, and the host spreads the suite's
            # connections (no keep-alive) over the nodes: the suite's "consistent" needs
            # enough successes in a row to have sampled every node, not 3 from one of them.
            "-timeout-config-overrides=RequiredConsecutiveSuccesses:"
            f"{max(3, 3 * cluster.node_count)}",
        ]
        if args.features == "all":
            # Every feature but the mesh's (out of scope: with Mesh the suite also deploys
            # the mesh profile's workloads, of the echo-advanced image).
            flags += ["-all-features", "-exempt-features=Mesh"]
        elif args.features == "core":
            flags.append(f"-supported-features={','.join(CORE_FEATURES)}")
        # declared: no feature flag, the suite reads the GatewayClass's supportedFeatures
        if args.skip_tests:
            flags.append(f"-skip-tests={args.skip_tests}")
        if args.run_test:
            flags.append(f"-run-test={args.run_test}")
        if args.test_run:
            flags.append(f"-test.run={args.test_run}")
        env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig))
        started = time.monotonic()
        code = subprocess.run(
            [str(binaries.conformance), "-test.v", "-test.timeout=90m", *flags], env=env
        ).returncode
        print(f"conformance: exit {code} after {time.monotonic() - started:.0f} s")
        return code
    finally:
        if started_here:
            cluster.down()


if __name__ == "__main__":
    sys.exit(main())
