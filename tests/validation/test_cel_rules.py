"""Every distinct x-kubernetes-validations CEL rule of the Gateway API v1.4.1 CRDs (84),
evaluated the way CRD validation evaluates it, on a passing and a failing value.

Alike rules (a filter type and its config field, ...) get their cases from their
shape; the others from cel_cases.yaml. A rule with no case fails the test, so a new
Gateway API release cannot slip rules past it."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from shared_paths import GATEWAY_API

from propylon.resources.crd import evaluate_rule

CASES = yaml.safe_load((Path(__file__).parent / "cel_cases.yaml").read_text())
CRD_FILES = sorted((GATEWAY_API / "crd").glob("*/*.yaml"))


def _rules() -> list[str]:
    found: dict[str, None] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for v in node.get("x-kubernetes-validations") or ():
                found.setdefault(v["rule"], None)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in CRD_FILES:
        for doc in yaml.safe_load_all(path.read_text()):
            walk(doc)
    return list(found)


Case = tuple[Any, Any, Any]  # passing self, failing self, oldSelf
_FAMILIES: list[tuple[str, Callable[..., Case]]] = [
    (
        r"!\(has\(self\.(\w+)\) && self\.type != '(\w+)'\)",
        lambda field, t: ({"type": t, field: {}}, {"type": "Other", field: {}}, None),
    ),
    (
        r"!\(!has\(self\.(\w+)\) && self\.type == '(\w+)'\)",
        lambda field, t: ({"type": t, field: {}}, {"type": t}, None),
    ),
    (
        r"self\.filter\(f, f\.type == '(\w+)'\)\.size\(\) <= 1",
        lambda t: ([{"type": t}, {"type": "Other"}], [{"type": t}, {"type": t}], None),
    ),
    (
        r"\(self\.type in \['Exact','PathPrefix'\]\) \? !self\.value\.contains\('(.+)'\) : true",
        lambda bad: (
            {"type": "Exact", "value": "/a/b"},
            {"type": "PathPrefix", "value": f"/a{bad}b"},
            None,
        ),
    ),
    (
        r"self\.type == '(\w+)' \? has\(self\.(\w+)\) : true",
        lambda t, field: ({"type": t, field: "x"}, {"type": t}, None),
    ),
    (
        r"has\(self\.(\w+)\) \? self\.type == '(\w+)' : true",
        lambda field, t: ({"type": t, field: "x"}, {"type": "Other", field: "x"}, None),
    ),
    (
        r"self\.protocol == '(\w+)' \? has\(self\.(\w+)\) : true",
        lambda p, field: ({"protocol": p, field: {}}, {"protocol": p}, None),
    ),
    (
        r"has\(self\.(\w+)\) \? self\.protocol == '(\w+)' : true",
        lambda field, p: ({"protocol": p, field: {}}, {"protocol": "Other", field: {}}, None),
    ),
]


def _many(total: int) -> list[dict[str, Any]]:
    """16 rules whose matches add up to `total` (at most 64 each)."""
    rules = []
    for i in range(16):
        n = min(64, max(0, total - 64 * i)) if i < 15 else max(0, total - 64 * 15)
        n = min(n, total - sum(len(r["matches"]) for r in rules))
        rules.append({"matches": [{"path": {"value": "/"}}] * n})
    return rules


def _expand(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"many"}:
        return _many(value["many"])
    return value


def case_for(rule: str) -> Case:
    for pattern, make in _FAMILIES:
        m = re.fullmatch(pattern, rule)
        if m:
            return make(*m.groups())
    picked = [c for c in CASES if c["rule"] in rule]
    assert len(picked) == 1, f"{len(picked)} cases in cel_cases.yaml for rule: {rule[:200]}"
    c = picked[0]
    return _expand(c["pass"]), _expand(c["fail"]), c.get("oldSelf")


RULES = _rules()


def test_every_rule_of_the_crds() -> None:
    assert len(RULES) == 84  # Gateway API v1.4.1, standard + experimental channels


def test_every_case_is_used() -> None:
    unused = [c["rule"] for c in CASES if not any(c["rule"] in r for r in RULES)]
    assert not unused


@pytest.mark.parametrize("rule", RULES, ids=lambda r: re.sub(r"\W+", "_", r)[:60])
def test_rule_passes_and_fails(rule: str) -> None:
    passing, failing, old = case_for(rule)
    assert evaluate_rule(rule, passing, old) is True
    assert evaluate_rule(rule, failing, old) is False
