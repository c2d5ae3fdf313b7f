"""Model -> xDS golden files, and proof that Envoy accepts every translation
(`envoy --mode validate`).

Each case is a directory of cases/: `input.yaml` holds the model (listeners, clusters,
secrets as the model's dataclasses spell them; `scoped_min_hosts` if not the default),
and the expected output is one file per resource kind (`listeners.yaml`, `routes.yaml`,
`clusters.yaml`, `endpoints.yaml`, `secrets.yaml`, `scoped_routes.yaml`), in Envoy's
proto3 JSON field names. Regenerate with PROPYLON_UPDATE_GOLDEN=1 and review the diff; a
missing expected file fails."""

from __future__ import annotations

import importlib.resources
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from pydantic import TypeAdapter

from propylon import model as m
from propylon.envoy import SCOPED_MIN_HOSTS, Translator, XdsResources, static_bootstrap, to_dicts

CASES = Path(__file__).parent / "cases"
NAMES = sorted(p.name for p in CASES.iterdir() if (p / "input.yaml").exists())
OPTIONS = m.ProxyOptions(xff_num_trusted_hops=1)
_PARTS = {
    "listeners": TypeAdapter(tuple[m.Listener, ...]),
    "clusters": TypeAdapter(tuple[m.Cluster, ...]),
    "secrets": TypeAdapter(tuple[m.Secret, ...]),
}


def load_case(name: str) -> tuple[m.Model, int]:
    """The case's model and the scoped RDS threshold it is translated with."""
    doc = yaml.safe_load((CASES / name / "input.yaml").read_text())
    model = m.Model(**{k: ta.validate_python(doc.get(k, [])) for k, ta in _PARTS.items()})
    return model, int(doc.get("scoped_min_hosts", SCOPED_MIN_HOSTS))


def translator(name: str) -> Translator:
    return Translator(scoped_min_hosts=load_case(name)[1])


def translate(name: str) -> XdsResources:
    return translator(name).translate(load_case(name)[0], OPTIONS)


def envoy_binary() -> Path:
    candidate = Path(str(importlib.resources.files("envoy._bin") / "envoy"))
    if candidate.exists():
        return candidate
    found = shutil.which("envoy")
    if found is None:
        pytest.skip("no envoy binary")
    return Path(found)


@pytest.mark.parametrize("name", NAMES)
def test_golden(name: str) -> None:
    got = to_dicts(translate(name))
    case = CASES / name
    if os.environ.get("PROPYLON_UPDATE_GOLDEN") == "1":
        for stale in set(case.glob("*.yaml")) - {case / "input.yaml"}:
            stale.unlink()
        for kind, resources in got.items():
            (case / f"{kind}.yaml").write_text(yaml.safe_dump(resources, sort_keys=True))
    expected = {p.stem for p in case.glob("*.yaml")} - {"input"}
    for kind in got.keys() - expected:
        pytest.fail(f"{case / kind}.yaml is missing: write it with PROPYLON_UPDATE_GOLDEN=1")
    assert expected == set(got), f"{name}: expected files for kinds it no longer produces"
    for kind, resources in got.items():
        want = (case / f"{kind}.yaml").read_text()
        assert yaml.safe_dump(resources, sort_keys=True) == want, f"{name}/{kind}.yaml differs"


@pytest.mark.parametrize("name", NAMES)
def test_envoy_accepts(name: str, tmp_path: Path) -> None:
    cfg = tmp_path / "static.json"
    cfg.write_text(json.dumps(static_bootstrap(translate(name))))
    proc = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(cfg), "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_cached(name: str) -> None:
    a = translate(name)
    tr = translator(name)
    model = load_case(name)[0]
    b = tr.translate(model, OPTIONS)
    c = tr.translate(model, OPTIONS)  # served from the cache
    for x, y in ((a, b), (b, c)):
        for type_url, res in x.by_type().items():
            other = y.by_type()[type_url]
            assert list(res) == list(other)
            for n, e in res.items():
                assert e.data == other[n].data
                assert e.data == e.message.SerializeToString(deterministic=True)
    for type_url, res in b.by_type().items():
        for n, e in res.items():
            assert c.by_type()[type_url][n] is e  # not rebuilt


def test_cache_rebuilds_only_what_changed() -> None:
    tr = Translator()
    model = load_case("wildcard_and_catch_all_hosts")[0]
    first = tr.translate(model, OPTIONS).by_type()
    lst = model.listeners[0]
    assert lst.http is not None
    vhosts = (*lst.http[:-1], m.VirtualHost(lst.http[-1].name, ("*",), ()))
    changed = m.Model(
        listeners=(m.Listener(lst.name, lst.address, lst.port, http=vhosts),),
        clusters=model.clusters,
    )
    second = tr.translate(changed, OPTIONS).by_type()
    from propylon.envoy import CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE

    assert second[LISTENER_TYPE][lst.name] is first[LISTENER_TYPE][lst.name]
    assert second[CLUSTER_TYPE] == first[CLUSTER_TYPE]
    assert second[ROUTE_TYPE][lst.name].data != first[ROUTE_TYPE][lst.name].data
