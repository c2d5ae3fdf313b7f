"""`propylon validate` and a real kube-apiserver (the dev cluster, Gateway API v1.4.1 CRDs,
experimental channel) agree on the same corpus: every object of the invalid corpus
(tests/validation/invalid) is refused by both, and the conformance suite's manifests are
accepted by both (server-side dry run with strict field validation)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from shared_paths import CONFORMANCE, GATEWAY_API

from devcluster import build

CRDS = GATEWAY_API / "crd" / "experimental"
INVALID = Path(__file__).resolve().parents[1] / "validation" / "invalid"
CASES = sorted(p.name for p in INVALID.glob("*.yaml"))
# The suite's manifests hold placeholders it fills in at run time; both sides refuse the
# raw placeholder, so those documents are left out of the "accepted by both" check.
PLACEHOLDERS = ("PLACEHOLDER_", "{GATEWAY_CONTROLLER_NAME}")
VALID_FILES = ["base/manifests.yaml", "tests/httproute-simple-same-namespace.yaml"]


@pytest.fixture(scope="module")
def cluster(devcluster: Any) -> Any:
    devcluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    devcluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    return devcluster


def _materialize(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copy(INVALID / name, target)
    text = target.read_text().replace("PLACEHOLDER_300_KIB", "x" * 300 * 1024)
    target.write_text(text)
    return target


def _server_dry_run(cluster: Any, path: Path) -> subprocess.CompletedProcess[str]:
    argv = [str(build.binaries().kubectl), f"--kubeconfig={cluster.kubeconfig}", "apply"]
    argv += ["--dry-run=server", "--validate=strict", "-f", str(path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def _propylon_validate(path: Path, with_crds: bool) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "propylon.cli.main", "validate", "-f", str(path)]
    if with_crds:
        argv += ["--crds", str(CRDS)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", CASES)
def test_both_refuse_the_invalid_corpus(cluster: Any, name: str, tmp_path: Path) -> None:
    path = _materialize(name, tmp_path)
    server = _server_dry_run(cluster, path)
    assert server.returncode != 0, f"the API server accepted {name}: {server.stdout}"
    ours = _propylon_validate(path, with_crds=True)
    assert ours.returncode != 0, f"propylon validate accepted {name}: {ours.stdout}"
    if "# crd-only" not in path.read_text():
        ours = _propylon_validate(path, with_crds=False)
        assert ours.returncode != 0, f"propylon validate (no CRDs) accepted {name}"


@pytest.mark.parametrize("relative", VALID_FILES)
def test_both_accept_the_conformance_manifests(cluster: Any, relative: str, tmp_path: Path) -> None:
    documents = [
        doc
        for doc in yaml.safe_load_all((CONFORMANCE / relative).read_text())
        if doc and not any(p in yaml.safe_dump(doc) for p in PLACEHOLDERS)
    ]
    # Namespaces first, as a user applies them, so the dry run can place the rest.
    namespaces = [d for d in documents if d["kind"] == "Namespace"]
    for namespace in namespaces:
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(namespace))
    path = tmp_path / "manifests.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    server = _server_dry_run(cluster, path)
    assert server.returncode == 0, server.stderr
    ours = _propylon_validate(path, with_crds=True)
    assert ours.returncode == 0, ours.stdout + ours.stderr
