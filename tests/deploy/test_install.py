"""The chart on a real kube-apiserver (with etcd; no nodes, nothing scheduled): `helm
install` is accepted, the CRDs are structural and typed, the plain manifests apply, and
the ServiceAccounts may do what the RBAC says and nothing else.

A private control plane on loopback with free ports, not the dev cluster: the dev
cluster is one per machine, and these checks need only the API server.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from chart_harness import CHART, REPO, helm_binary
from free_ports import free_port
from shared_paths import GATEWAY_API

from devcluster import build, pki


@dataclass
class ApiServer:
    kubeconfig: Path
    kubectl_binary: Path

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.kubectl_binary), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=120,
        )

    def helm(self, *args: str) -> subprocess.CompletedProcess[str]:
        folder = self.kubeconfig.parent
        env = {
            **os.environ,
            "HELM_CONFIG_HOME": str(folder / "helm-config"),
            "HELM_CACHE_HOME": str(folder / "helm-cache"),
            "HELM_DATA_HOME": str(folder / "helm-data"),
        }
        return subprocess.run(
            [str(helm_binary()), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    binaries = build.ensure_built()
    folder = tmp_path_factory.mktemp("apiserver")
    ca = pki.Authority(folder / "pki")
    serving = ca.issue("apiserver", "kube-apiserver", ips=("127.0.0.1",), server=True)
    admin = ca.issue("admin", "admin", organization="system:masters")
    accounts = pki.service_account_keys(folder / "pki")
    client, peer, port = free_port(), free_port(), free_port()
    kubeconfig = folder / "kubeconfig"
    pki.write_kubeconfig(kubeconfig, f"https://127.0.0.1:{port}", ca.cert_path, admin, "admin")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with (folder / "etcd.log").open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [
                        str(binaries.etcd),
                        f"--data-dir={folder / 'etcd'}",
                        f"--listen-client-urls=http://127.0.0.1:{client}",
                        f"--advertise-client-urls=http://127.0.0.1:{client}",
                        f"--listen-peer-urls=http://127.0.0.1:{peer}",
                        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                        f"--initial-cluster=default=http://127.0.0.1:{peer}",
                        "--listen-metrics-urls=",
                        "--unsafe-no-fsync=true",
                    ],
                    stdout=log,
                    stderr=log,
                )
            )
        with (folder / "kube-apiserver.log").open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [
                        str(binaries.kube_apiserver),
                        f"--etcd-servers=http://127.0.0.1:{client}",
                        "--bind-address=127.0.0.1",
                        "--advertise-address=127.0.0.1",
                        f"--secure-port={port}",
                        f"--tls-cert-file={serving.cert}",
                        f"--tls-private-key-file={serving.key}",
                        f"--client-ca-file={ca.cert_path}",
                        "--service-account-issuer=https://kubernetes.default.svc",
                        f"--service-account-key-file={accounts.cert}",
                        f"--service-account-signing-key-file={accounts.key}",
                        "--service-cluster-ip-range=198.19.0.0/16",
                        "--authorization-mode=RBAC",
                        "--profiling=false",
                    ],
                    stdout=log,
                    stderr=log,
                )
            )
        server = ApiServer(kubeconfig, Path(binaries.kubectl))
        deadline = time.monotonic() + 90
        while server.kubectl("get", "--raw", "/readyz").returncode != 0:
            for process in processes:
                assert process.poll() is None, (folder / "kube-apiserver.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "kube-apiserver did not become ready"
            time.sleep(0.2)  # polling /readyz until the server answers
        yield server
    finally:
        for process in reversed(processes):
            _stop(process)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def installed(apiserver: ApiServer) -> ApiServer:
    """The chart installed with its defaults, as a user would."""
    ok(apiserver.helm("install", "propylon", str(CHART), "--namespace", "kube-system"))
    return apiserver


def test_plain_manifests_are_accepted(apiserver: ApiServer) -> None:
    manifests = REPO / "deploy" / "manifests" / "propylon.yaml"
    # A server dry run creates nothing, so the objects in the secrets namespace that the
    # same manifests create find no namespace: that is the only error allowed, and those
    # objects are checked again in a namespace that exists.
    result = apiserver.kubectl("apply", "--server-side", "--dry-run=server", "-f", str(manifests))
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert errors and all('namespaces "cilium-secrets" not found' in e for e in errors), errors
    out = result.stdout
    docs = [d for d in yaml.safe_load_all(manifests.read_text()) if d]
    moved = [d for d in docs if d["metadata"].get("namespace") == "cilium-secrets"]
    assert {d["kind"] for d in moved} == {"Role", "RoleBinding"}
    for doc in moved:
        doc["metadata"]["namespace"] = "kube-system"
    ok(
        apiserver.kubectl(
            "apply", "--server-side", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(moved)
        )
    )
    assert "deployment.apps/propylon-operator serverside-applied (server dry run)" in out


def test_helm_install(installed: ApiServer) -> None:
    apiserver = installed
    status = ok(apiserver.helm("status", "propylon", "--namespace", "kube-system"))
    assert "STATUS: deployed" in status
    for crd in (
        "ciliumgatewayclassconfigs.cilium.io",
        "ciliumloadbalancerippools.cilium.io",
        "ciliumnetworkpolicies.cilium.io",
        "ciliumclusterwidenetworkpolicies.cilium.io",
    ):
        ok(apiserver.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s"))
    deployment = ok(
        apiserver.kubectl(
            "-n",
            "kube-system",
            "get",
            "deployment",
            "propylon-operator",
            "-o",
            "jsonpath={.spec.replicas}",
        )
    )
    assert deployment == "2"
    # A wrong value is refused on upgrade too, naming it.
    refused = apiserver.helm(
        "upgrade",
        "propylon",
        str(CHART),
        "--namespace",
        "kube-system",
        "--set",
        "operator.replicas=-1",
    )
    assert refused.returncode != 0 and "at '/operator/replicas'" in refused.stderr


def test_cilium_kinds_are_typed(installed: ApiServer) -> None:
    apiserver = installed
    # Users install the Gateway API CRDs themselves, as with Cilium.
    ok(apiserver.kubectl("apply", "--server-side", "-f", str(GATEWAY_API / "crd" / "standard")))
    ok(apiserver.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"))
    walkthrough = REPO / "examples" / "walkthrough" / "00-gatewayclass.yaml"
    out = ok(apiserver.kubectl("apply", "-f", str(walkthrough)))
    assert "ciliumgatewayclassconfig.cilium.io/example-gateway-config created" in out
    pools = REPO / "tests" / "golden" / "ip-pools" / "input.yaml"
    out = ok(apiserver.kubectl("apply", "-f", str(pools)))
    assert "ciliumloadbalancerippool.cilium.io/b-public created" in out
    wrong = apiserver.kubectl(
        "apply",
        "-f",
        "-",
        input="apiVersion: cilium.io/v2alpha1\nkind: CiliumGatewayClassConfig\n"
        "metadata: {name: wrong, namespace: default}\nspec: {service: {type: Ingress}}\n",
    )
    assert wrong.returncode != 0
    assert 'spec.service.type: Unsupported value: "Ingress"' in wrong.stderr
    pool = apiserver.kubectl(
        "apply",
        "-f",
        "-",
        input="apiVersion: cilium.io/v2alpha1\nkind: CiliumLoadBalancerIPPool\n"
        "metadata: {name: old}\nspec: {blocks: [{cidr: 198.19.200.0/24}]}\n",
    )
    assert pool.returncode == 0, pool.stderr  # the older version is still served


OPERATOR = "system:serviceaccount:kube-system:propylon-operator"
AGENT = "system:serviceaccount:kube-system:propylon"
ENVOY = "system:serviceaccount:kube-system:propylon-envoy"


@pytest.mark.parametrize(
    ("who", "request_", "allowed"),
    [
        (
            OPERATOR,
            "patch gateways.gateway.networking.k8s.io --subresource=status -n default",
            True,
        ),
        (OPERATOR, "patch gateways.gateway.networking.k8s.io -n default", False),
        (
            OPERATOR,
            "update httproutes.gateway.networking.k8s.io --subresource=status -n default",
            False,
        ),
        (OPERATOR, "create services -n default", True),
        (OPERATOR, "patch services --subresource=status -n default", True),
        (OPERATOR, "create endpointslices.discovery.k8s.io -n default", True),
        (OPERATOR, "create events.events.k8s.io -n default", True),
        (OPERATOR, "update leases.coordination.k8s.io/propylon-operator -n kube-system", True),
        (OPERATOR, "update leases.coordination.k8s.io/other -n kube-system", False),
        (OPERATOR, "create leases.coordination.k8s.io -n default", False),
        (OPERATOR, "watch leases.coordination.k8s.io -A", True),  # the agents' node reports
        (OPERATOR, "patch leases.coordination.k8s.io/propylon-agent-node-1 -n kube-system", False),
        (OPERATOR, "watch secrets -A", True),
        (OPERATOR, "get secrets -n default", False),
        (OPERATOR, "create secrets -n default", False),
        # gatewayAPI.secretsNamespace: the operator writes the copies there, the agents
        # read Secrets there and nowhere else.
        (OPERATOR, "create secrets -n cilium-secrets", True),
        (OPERATOR, "delete secrets -n cilium-secrets", True),
        (AGENT, "watch secrets -A", False),
        (AGENT, "list secrets -n default", False),
        (AGENT, "watch secrets -n cilium-secrets", True),
        (AGENT, "create secrets -n cilium-secrets", False),
        (AGENT, "watch httproutes.gateway.networking.k8s.io -A", True),
        (AGENT, "list ciliumloadbalancerippools.cilium.io", True),
        (AGENT, "create services -n default", False),
        (AGENT, "patch gateways.gateway.networking.k8s.io --subresource=status -n default", False),
        (AGENT, "patch leases.coordination.k8s.io/propylon-agent-node-1 -n kube-system", True),
        (AGENT, "patch leases.coordination.k8s.io/propylon-agent-node-1 -n default", False),
        (AGENT, "update leases.coordination.k8s.io/propylon-operator -n kube-system", False),
        (ENVOY, "list services -A", False),
    ],
)
def test_service_accounts_may_do_what_rbac_says(
    installed: ApiServer, who: str, request_: str, allowed: bool
) -> None:
    answer = installed.kubectl("auth", "can-i", f"--as={who}", *request_.split())
    assert answer.stdout.strip() == ("yes" if allowed else "no"), answer.stdout + answer.stderr
