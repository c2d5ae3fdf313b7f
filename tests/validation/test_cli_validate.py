"""`propylon validate` as a user runs it: with and without CRDs, on the invalid corpus,
on what Envoy would reject, and on the conformance manifests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from shared_paths import CONFORMANCE, GATEWAY_API
from validation_support import BASE

from propylon.cli import main

CRDS = GATEWAY_API / "crd" / "experimental"
INVALID = Path(__file__).parent / "invalid"


def _corpus_copy(tmp_path: Path) -> Path:
    out = tmp_path / "invalid"
    shutil.copytree(INVALID, out)
    big = out / "18-annotations-too-big.yaml"
    big.write_text(big.read_text().replace("PLACEHOLDER_300_KIB", "x" * 300 * 1024))
    return out


@pytest.mark.parametrize("with_crds", [True, False], ids=["crds", "models"])
def test_every_invalid_object_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], with_crds: bool
) -> None:
    corpus = _corpus_copy(tmp_path)
    args = ["validate", "-f", str(corpus), *(["--crds", str(CRDS)] if with_crds else [])]
    assert main(args) == 1
    out = capsys.readouterr().out
    for path in sorted(corpus.glob("*.yaml")):
        if "# crd-only" in path.read_text() and not with_crds:
            assert f"error: {path}" not in out  # the models alone cannot refuse it...
            assert f"warning: {path}#0: " in out  # ...but they say what looks wrong
        else:
            assert f"error: {path}#0: " in out, path.name


def test_what_envoy_would_reject_fails_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "world.yaml").write_text(BASE)
    (tmp_path / "bad.yaml").write_text(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bad}
spec:
  parentRefs: [{name: gw}]
  rules: [{matches: [{path: {type: RegularExpression, value: "/foo(?=x)"}}]}]
"""
    )
    assert main(["validate", "-f", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "HTTPRoute default/bad" in out and "invalid perl operator" in out
    assert "HTTPRoute default/good" not in out


def test_crd_files_that_cannot_be_used(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "world.yaml").write_text(BASE)
    assert main(["validate", "-f", str(tmp_path), "--crds", str(tmp_path / "missing")]) == 2
    assert "--crds:" in capsys.readouterr().err


def test_conformance_base_manifests_with_crds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The suite's base manifests, as the API server takes them: no schema error."""
    base = CONFORMANCE / "base" / "manifests.yaml"
    main(["validate", "-f", str(base), "--crds", str(CRDS)])
    out = capsys.readouterr().out
    assert "unknown field" not in out and "Invalid value" not in out
    assert "Required value" not in out
