"""`propylon explain`: the verdict for one request, naming the policy and rule."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from propylon.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "policy"


def manifests(tmp_path: Path, *policies: str) -> str:
    root = tmp_path / "m"
    root.mkdir(parents=True)
    for path in EXAMPLE.glob("*.yaml"):
        shutil.copy(path, root)
    for name in policies:
        shutil.copy(EXAMPLE.parent / "cilium-policies" / f"{name}.yaml", root)
    return str(root)


def explain(root: str, source: str, *extra: str) -> list[str]:
    return ["explain", "-f", root, "--from", source, "--gateway", "bookinfo", *extra]


def test_without_policy_everything_is_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(explain(manifests(tmp_path), "192.0.2.1", "--path", "/details/1")) == 0
    assert "no CiliumNetworkPolicy" in capsys.readouterr().out


def test_lockdown_names_the_policy_for_world_and_admits_the_client_pod(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = manifests(tmp_path, "external-lockdown")
    assert main(explain(root, "192.0.2.1", "--path", "/details/1")) == 1
    out = capsys.readouterr().out
    assert "from world (192.0.2.1) on port 8080: default deny" in out
    assert "CiliumClusterwideNetworkPolicy/external-lockdown" in out
    assert out.rstrip().endswith("DENIED (status 403)")
    assert main(explain(root, "127.0.0.7", "--path", "/details/1")) == 0
    out = capsys.readouterr().out
    assert "from pod default/client on port 8080: allowed by" in out
    assert "external-lockdown spec.ingress[0]" in out


def test_default_deny_blames_the_ingress_identitys_egress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = manifests(tmp_path, "default-deny")
    assert main(explain(root, "192.0.2.1", "--path", "/details/1")) == 1
    out = capsys.readouterr().out
    assert "egress of the ingress identity to pod default/details-v1 on port 9080" in out
    assert "DENIED (status 403)" in out
    root2 = manifests(tmp_path / "again", "default-deny", "allow-ingress-cluster")
    assert main(explain(root2, "192.0.2.1", "--path", "/details/1")) == 0
    assert "allow-ingress-egress spec.egress[0]" in capsys.readouterr().out
