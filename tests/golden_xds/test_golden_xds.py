"""Model -> xDS golden files (regenerate with PROPYLON_UPDATE_GOLDEN=1), and proof that
Envoy accepts every translation (`envoy --mode validate`)."""

from __future__ import annotations

import importlib.resources
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from xds_golden_models import MODELS, SCOPED_MIN

from propylon import model as m
from propylon.envoy import SCOPED_MIN_HOSTS, Translator, XdsResources, static_bootstrap, to_dicts

GOLDEN = Path(__file__).parent / "golden"
OPTIONS = m.ProxyOptions(xff_num_trusted_hops=1)


def translator(name: str) -> Translator:
    return Translator(scoped_min_hosts=SCOPED_MIN.get(name, SCOPED_MIN_HOSTS))


def translate(name: str) -> XdsResources:
    return translator(name).translate(MODELS[name](), OPTIONS)


def envoy_binary() -> Path:
    candidate = Path(str(importlib.resources.files("envoy._bin") / "envoy"))
    if candidate.exists():
        return candidate
    found = shutil.which("envoy")
    if found is None:
        pytest.skip("no envoy binary")
    return Path(found)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_golden(name: str) -> None:
    got = yaml.safe_dump(to_dicts(translate(name)), sort_keys=True)
    path = GOLDEN / f"{name}.yaml"
    if os.environ.get("PROPYLON_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(got)
    if not path.exists():
        pytest.fail(f"{path} is missing: write it with PROPYLON_UPDATE_GOLDEN=1, then review it")
    assert got == path.read_text()


@pytest.mark.parametrize("name", sorted(MODELS))
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


@pytest.mark.parametrize("name", sorted(MODELS))
def test_deterministic_and_cached(name: str) -> None:
    a = translate(name)
    tr = translator(name)
    b = tr.translate(MODELS[name](), OPTIONS)
    c = tr.translate(MODELS[name](), OPTIONS)  # served from the cache
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
    model = MODELS["http_features"]()
    first = tr.translate(model, OPTIONS).by_type()
    lst = model.listeners[0]
    assert lst.http is not None
    vhosts = (lst.http[0], lst.http[1], m.VirtualHost(lst.http[2].name, ("*",), ()))
    changed = m.Model(
        listeners=(m.Listener(lst.name, lst.address, lst.port, http=vhosts),),
        clusters=model.clusters,
    )
    second = tr.translate(changed, OPTIONS).by_type()
    from propylon.envoy import CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE

    assert second[LISTENER_TYPE][lst.name] is first[LISTENER_TYPE][lst.name]
    assert second[CLUSTER_TYPE] == first[CLUSTER_TYPE]
    assert second[ROUTE_TYPE][lst.name].data != first[ROUTE_TYPE][lst.name].data
