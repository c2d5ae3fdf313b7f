"""The CEL library (and the command-line modules it brings: ~13 MiB of RSS, 0.2 s of
CPU) is imported only when a CRD's rules are compiled, not by `propylon run` without
CRD files."""

from __future__ import annotations

import subprocess
import sys

_PROBE = """
import sys
import propylon.cli.main, propylon.runtime.instance, propylon.sources.files
from propylon.resources import parse_object
parse_object({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
              "spec": {"ports": [{"port": 80}]}})
print(sorted(m for m in ("cel", "prompt_toolkit", "rich", "typer") if m in sys.modules))
from propylon.resources.celfunctions import evaluate_rule
print(evaluate_rule("self.size() > 1", "ab"), "cel" in sys.modules)
"""


def test_cel_is_imported_only_when_a_rule_is_compiled() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], check=True, capture_output=True, text=True
    ).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "True True"
