"""Every conformance manifest parses (except kinds we deliberately do not model) and
build() never raises on them, alone or all together."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from shared_paths import CONFORMANCE

from propylon.gatewayapi import Inputs, build
from propylon.resources import ObjectKey, Resource, UnknownKindError, parse_object

NOT_MODELLED = {"Deployment", "UDPRoute", "TCPRoute", "Pod", "ServiceAccount"}
CLASS = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "GatewayClass",
    "metadata": {"name": "propylon"},
    "spec": {"controllerName": "io.cilium/gateway-controller"},
}
FILES = sorted(CONFORMANCE.glob("tests/*.yaml")) if CONFORMANCE.exists() else []


def load(path: Path) -> dict[ObjectKey, Resource]:
    text = (
        path.read_text()
        .replace("{GATEWAY_CLASS_NAME}", "propylon")
        .replace("PLACEHOLDER_UNUSABLE_ADDRS", "10.255.255.1")
        .replace("PLACEHOLDER_USABLE_ADDRS", "127.10.0.200")
    )
    out: dict[ObjectKey, Resource] = {}
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        try:
            obj = parse_object(doc)
        except UnknownKindError:
            assert doc["kind"] in NOT_MODELLED, doc["kind"]
            continue
        out[obj.key] = obj
    return out


pytestmark = pytest.mark.skipif(not CONFORMANCE.exists(), reason="conformance data absent")


@pytest.fixture(scope="module")
def base() -> dict[ObjectKey, Resource]:
    objs = load(CONFORMANCE / "base" / "manifests.yaml")
    cls = parse_object(CLASS)
    objs[cls.key] = cls
    return objs


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_manifest_builds(path: Path, base: dict[ObjectKey, Resource]) -> None:
    objects = {**base, **load(path)}
    result = build(Inputs(objects=objects, default_pool=("127.10.0.0/16",)))
    assert result.model is not None


def test_everything_together(base: dict[ObjectKey, Resource]) -> None:
    objects = dict(base)
    for path in FILES:
        objects.update(load(path))
    result = build(Inputs(objects=objects, default_pool=("127.10.0.0/16",)))
    assert result.model.listeners
