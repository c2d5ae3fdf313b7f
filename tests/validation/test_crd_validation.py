"""Validation from the CRDs themselves, and `propylon validate` as the API server.

- The conformance suite's manifests are valid (but for its placeholders, which the
  suite replaces before applying them), with the v1.4.1 CRDs and without any CRD.
- Every object of the invalid corpus (tests/validation/invalid, one object per file,
  `# expect:` the words the error must contain) is refused, with the CRDs and, unless
  marked `crd-only`, with the built-in models alone. The corpus is data, ready for the
  comparison with a real API server once the dev cluster exists.
- CRDs among the manifests are installed, as a cluster installs them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from shared_paths import CONFORMANCE, GATEWAY_API

from propylon.resources import ResourceError, parse_object
from propylon.resources.crd import CRDSchemas
from propylon.sources.crds import load_crd_files
from propylon.sources.files import FileSource, load_paths

CRDS = GATEWAY_API / "crd" / "experimental"
INVALID = sorted((Path(__file__).parent / "invalid").glob("*.yaml"))
# The suite fills these in before applying its manifests (an API server refuses them too).
PLACEHOLDERS = ("PLACEHOLDER_", "{GATEWAY_CONTROLLER_NAME}")


@pytest.fixture(scope="module")
def schemas() -> CRDSchemas:
    return load_crd_files([CRDS])


def _conformance_docs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(CONFORMANCE.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind"):
                out.append((str(path.relative_to(CONFORMANCE)), doc))
    return out


def test_conformance_manifests_are_valid(schemas: CRDSchemas) -> None:
    checked = 0
    for where, doc in _conformance_docs():
        if not schemas.serves(str(doc.get("apiVersion")), str(doc["kind"])):
            continue
        checked += 1
        problems = schemas.validate(doc)
        text = yaml.safe_dump(doc)
        if any(p in text for p in PLACEHOLDERS):
            assert problems, where  # the API server refuses the raw placeholder too
            continue
        assert not problems, (where, [str(p) for p in problems])
        parse_object(doc)  # the built-in models agree
    assert checked > 150


def _corpus(path: Path) -> tuple[dict[str, Any], str, bool]:
    text = path.read_text()
    expect = next(
        line.split(":", 1)[1].strip() for line in text.splitlines() if "# expect:" in line
    )
    doc = yaml.safe_load(text)
    annotations = doc["metadata"].get("annotations") or {}
    for key, value in annotations.items():
        if value == "PLACEHOLDER_300_KIB":
            annotations[key] = "x" * 300 * 1024
    return doc, expect, "# crd-only" in text


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_corpus_is_refused(path: Path, schemas: CRDSchemas) -> None:
    doc, expect, crd_only = _corpus(path)
    with pytest.raises(ResourceError) as with_crds:
        parse_object(doc, schemas)
    assert expect in str(with_crds.value)
    if crd_only:
        parse_object(doc)  # accepted by the models alone: the CRD is what knows better
        return
    with pytest.raises(ResourceError) as without:
        parse_object(doc)
    assert expect in str(without.value)


def test_unknown_fields_without_crds_are_warnings(tmp_path: Path) -> None:
    """Without the CRD files a typo cannot be refused (the models may lack a field), but
    it is not silent either: a warning names the field."""
    (tmp_path / "route.yaml").write_text(
        (Path(__file__).parent / "invalid" / "17-unknown-field.yaml").read_text()
    )
    changeset = load_paths([tmp_path])
    assert not changeset.errors
    (warning,) = changeset.diagnostics
    assert 'unknown field "spec.rules[0].backendRef"' in str(warning)


def test_no_unknown_field_warnings_on_the_conformance_manifests() -> None:
    changeset = load_paths([CONFORMANCE])
    assert not [d for d in changeset.diagnostics if "unknown field" in str(d)]


def test_crds_among_the_manifests_are_installed(tmp_path: Path) -> None:
    (tmp_path / "route.yaml").write_text(
        (Path(__file__).parent / "invalid" / "17-unknown-field.yaml").read_text()
    )
    alone = load_paths([tmp_path])
    assert not alone.errors
    with_crds = load_paths([tmp_path, CRDS])
    (error,) = with_crds.errors
    assert 'unknown field "spec.rules[0].backendRef"' in str(error)
    assert any(k.kind == "CustomResourceDefinition" for k in with_crds.objects)


def test_crds_from_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "route.yaml").write_text(
        (Path(__file__).parent / "invalid" / "17-unknown-field.yaml").read_text()
    )
    source = FileSource([tmp_path], crds=[CRDS])
    (error,) = source.load().errors
    assert "unknown field" in str(error)
    # Editing the route into shape clears the error (the CRDs stay installed).
    (tmp_path / "route.yaml").write_text(
        (tmp_path / "route.yaml").read_text().replace("backendRef:", "backendRefs:")
    )
    assert not source.update([tmp_path / "route.yaml"]).errors
