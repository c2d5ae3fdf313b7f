"""Kubernetes-mode tests run against a real kube-apiserver + etcd (+ the garbage
collector of kube-controller-manager), started once per session from the dev
cluster's binaries (`kube_controlplane.py`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from kube_controlplane import ControlPlane, binaries_dir, start
from shared_paths import GATEWAY_API

from propylon.kube.api import KubeApi

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def controlplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    bindir = binaries_dir()
    if bindir is None:
        pytest.fail("kube-apiserver/etcd not built: run `python -m devcluster build`")
    cp = start(tmp_path_factory.mktemp("controlplane"), bindir, controller_manager=True)
    try:
        cp.kubectl("apply", "--server-side", "-f", str(GATEWAY_API / "crd" / "experimental"))
        cp.kubectl("apply", "-f", str(HERE / "crds" / "cilium.yaml"))
        cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        yield cp
    finally:
        cp.stop()


@pytest.fixture
async def api(controlplane: ControlPlane) -> AsyncIterator[KubeApi]:
    client = KubeApi.connect(controlplane.kubeconfig)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def namespace(controlplane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    name = "t-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    controlplane.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        controlplane.kubectl("delete", "namespace", name, "--wait=false", check=False)
