"""Property-based fuzzing over every kind: no traceback, and the valid objects keep
serving, whatever one mutated object looks like.

Each example takes a valid object of one kind (fuzz_templates.yaml), mutates it (a
value replaced by anything JSON can hold, a field dropped, an unknown field added,
its name), and puts it beside a small valid world. Then:

- parsing (built-in models, and the v1.4.1 CRDs with their CEL rules) accepts it or
  raises `ResourceError`, nothing else;
- if accepted, building and translating the world does not raise, and the world's
  own route is still served (unless the mutant is an IP pool, which may take the
  addresses away, as it would in Cilium).

10 000 examples under CI (CI=true), 300 otherwise; PROPYLON_FUZZ_EXAMPLES overrides."""

from __future__ import annotations

import contextlib
import copy
import os
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shared_paths import GATEWAY_API
from validation_support import BASE

from propylon.envoy import Translator
from propylon.gatewayapi import Inputs, build
from propylon.model import ProxyOptions
from propylon.resources import ObjectKey, Resource, ResourceError, parse_object
from propylon.sources.crds import load_crd_files
from propylon.sources.documents import DocumentError, load_documents

TEMPLATES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "fuzz_templates.yaml").read_text()
)
SCHEMAS = load_crd_files([GATEWAY_API / "crd" / "experimental"])
WORLD = {obj.key: obj for doc in yaml.safe_load_all(BASE) if doc for obj in [parse_object(doc)]}
EXAMPLES = int(
    os.environ.get("PROPYLON_FUZZ_EXAMPLES") or (10_000 if os.environ.get("CI") else 300)
)

NASTY = [
    "",
    "*",
    "default",
    "gw",
    "svc",
    "/foo(?=x)",
    "(a)\\1",
    "a{1001}",
    "a\r\nb",
    "a\x00b",
    "192.0.2.1",
    "::1",
    "Host",
    ":authority",
    "ns/with/slash",
    "x:y",
    "GW:1",
    "%2f",
    "/a/../b",
    "1h",
    "99999h",
    "-1",
    "é" * 3,
    "a" * 300,
    "RegularExpression",
    "Exact",
    "PathPrefix",
    "RequestRedirect",
    "URLRewrite",
    "IPAddress",
    "Hostname",
    "Terminate",
    "Passthrough",
    "HTTPS",
    "TLS",
]
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(NASTY),
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["name", "type", "value", "port", "x"]), inner, max_size=3
        )
    ),
    max_leaves=8,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, (*path, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, (*path, i)))
    return out


def _mutate(doc: dict[str, Any], data: st.DataObject) -> None:
    path = data.draw(st.sampled_from([p for p in _paths(doc) if p]))
    parent: Any = doc
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    action = data.draw(st.sampled_from(["replace", "drop", "add"]))
    if action == "drop":
        del parent[last]
    elif action == "add" and isinstance(parent, dict):
        parent[data.draw(st.sampled_from(["fooBar", "matches", "x-y", "namespace"]))] = data.draw(
            values
        )
    else:
        parent[last] = data.draw(values)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_one_mutant_never_breaks_the_rest(data: st.DataObject) -> None:
    doc = copy.deepcopy(data.draw(st.sampled_from(TEMPLATES)))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        _mutate(doc, data)
    for schemas in (None, SCHEMAS):
        with contextlib.suppress(ResourceError):
            parse_object(doc, schemas)
    try:
        mutant: Resource = parse_object(doc)
    except ResourceError:
        return
    objects = {**WORLD, mutant.key: mutant}
    result = build(Inputs(objects=objects, default_pool=("127.10.0.0/16",)))
    Translator().translate(result.model, ProxyOptions())
    if mutant.key in WORLD or mutant.kind == "CiliumLoadBalancerIPPool":
        return  # it replaced a world object, or moved the addresses: nothing to compare
    served = {
        route.name
        for listener in result.model.listeners
        for vhost in listener.http or ()
        for route in vhost.routes
    }
    assert "HTTPRoute/default/good/rule/0/match/0" in served
    assert result.statuses[ObjectKey("HTTPRoute", "default", "good")]


@settings(max_examples=max(EXAMPLES // 10, 100), deadline=None, derandomize=True)
@given(st.text(alphabet=st.sampled_from(list("ab:-&*[]{}!|>'\"\n #%@`,?")), max_size=200))
def test_any_text_is_documents_or_a_document_error(text: str) -> None:
    with contextlib.suppress(DocumentError):
        load_documents(text)
    with contextlib.suppress(DocumentError):
        load_documents(text, json_file=True)
