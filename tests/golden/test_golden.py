"""Golden tests: tests/golden/<case>/input.yaml -> status.yaml + model.yaml.

Regenerate with PROPYLON_UPDATE_GOLDEN=1 and review every diff by eye."""

from __future__ import annotations

from pathlib import Path

import pytest
from golden_support import CASES, UPDATE, dump_model, dump_status, run_case

CASE_DIRS = sorted(p for p in CASES.iterdir() if (p / "input.yaml").exists())


@pytest.mark.parametrize("case", CASE_DIRS, ids=lambda p: p.name)
def test_golden(case: Path) -> None:
    result = run_case(case)
    outputs = {"status.yaml": dump_status(result), "model.yaml": dump_model(result.model)}
    for name, text in outputs.items():
        path = case / name
        if UPDATE:
            path.write_text(text)
        if not path.exists():
            pytest.fail(
                f"{path} is missing: write it with PROPYLON_UPDATE_GOLDEN=1, then review it"
            )
        assert path.read_text() == text, f"{case.name}/{name} differs (PROPYLON_UPDATE_GOLDEN=1)"


@pytest.mark.parametrize("case", CASE_DIRS, ids=lambda p: p.name)
def test_deterministic(case: Path) -> None:
    assert dump_model(run_case(case).model) == dump_model(run_case(case).model)
