"""Render the Helm chart with the real helm binary and look at what it made."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "propylon"


@cache
def render_module() -> ModuleType:
    """deploy/render_manifests.py (a script, not a package) as a module."""
    path = REPO / "deploy" / "render_manifests.py"
    spec = importlib.util.spec_from_file_location("render_manifests", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@cache
def helm_binary() -> Path:
    # No skip when helm is missing: the dev cluster's build provides it in CI.
    return Path(render_module().find_helm())


def helm(*args: str) -> Any:
    return render_module().helm(*args, helm_binary=helm_binary())


def template(*sets: str, values: Iterable[Path] = ()) -> list[dict[str, Any]]:
    """`helm template` with `--set` assignments; the documents it rendered."""
    args = ["template", "propylon", str(CHART), "--namespace", "kube-system"]
    for s in sets:
        args += ["--set", s]
    for v in values:
        args += ["--values", str(v)]
    result = helm(*args)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def refused(*sets: str) -> str:
    """helm's error for values the schema refuses (fails if they are accepted)."""
    args = ["template", "propylon", str(CHART), "--namespace", "kube-system"]
    for s in sets:
        args += ["--set", s]
    result = helm(*args)
    assert result.returncode != 0, f"helm accepted {sets}"
    return str(result.stderr)


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
    return found[0]


def container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == name)


def env_sources(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("valueFrom", e.get("value")) for e in c.get("env", ())}
