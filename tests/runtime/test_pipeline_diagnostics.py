"""Problems the Gateway API build reports reach the user in the one Diagnostic type, placed
at the file and document that define their object."""

from __future__ import annotations

import shutil
from pathlib import Path

from propylon.runtime.pipeline import evaluate_once
from propylon.sources.files import load_paths
from propylon.store import Diagnostic
from propylon.values import Values

CASE = Path(__file__).resolve().parents[1] / "golden" / "addresses" / "input.yaml"


def test_build_diagnostic_names_file_and_document(tmp_path: Path) -> None:
    manifest = tmp_path / "input.yaml"
    shutil.copy(CASE, manifest)
    evaluation = evaluate_once(load_paths([manifest]), Values())
    (found,) = [d for d in evaluation.diagnostics if "spec.addresses is ignored" in d.message]
    assert isinstance(found, Diagnostic)
    assert found.file == str(manifest) and found.document is not None
    assert found.object == "Gateway default/annotated" and found.field == "spec.addresses"
