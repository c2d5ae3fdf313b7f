"""The fast YAML path (`sources.fast_yaml`) gives what PyYAML gives, or steps aside.

Every document below is read both ways: when the fast path answers, its answer must
equal PyYAML's (with the loader `load_documents` uses); where YAML 1.1 and 1.2 differ,
or the input is bad, `load_documents` must give PyYAML's value or PyYAML's error."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from propylon.sources import documents
from propylon.sources.documents import DocumentError, load_documents
from propylon.sources.fast_yaml import read_document


def pyyaml(text: str) -> list[Any]:
    return list(yaml.load_all(text, Loader=documents._Loader))


def outcome(text: str) -> str:
    """What `load_documents` gives: the values (repr) or the error message."""
    try:
        return repr(load_documents(text))
    except DocumentError as exc:
        return f"error: {exc}"


def pyyaml_outcome(text: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The same, with the fast path off (PyYAML alone, as before it existed)."""
    with monkeypatch.context() as patch:
        patch.setattr(documents, "read_document", lambda text, resolvable: None)
        return outcome(text)


def same(a: Any, b: Any) -> bool:
    """Equal values of the same types in the same order (repr: NaN equals NaN)."""
    return repr(a) == repr(b)


def fast(text: str) -> dict[str, Any] | None:
    return read_document(text, documents._RESOLVABLE)


def test_a_plain_manifest_takes_the_fast_path() -> None:
    text = (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
        "metadata:\n  name: r1\n  namespace: default\n  labels: {}\n"
        "spec:\n  hostnames:\n  - 'r1.example.com'\n  rules:\n"
        "  - backendRefs:\n    - name: s1\n      port: 8080\n      weight: -3\n"
        '    filters: []\n    timeouts:\n      request: "10s"\n'
        "  enabled: true\n  nothing: null\n  f: 1.5\n"
    )
    assert fast(text) is not None
    assert same([fast(text)], pyyaml(text))


# YAML 1.1 (PyYAML) reads these differently from YAML 1.2, or rejects them: each must
# come out exactly as PyYAML reads it (through the fallback).
DIFFERING = [
    "a: yes",
    "a: On",
    "a: OFF",
    "a: 0777",
    "a: 08",
    "a: 0o17",
    "a: _1",
    "a: 1e3",
    "a: 1.0e3",
    "a: 1e+3",
    "a: -.5",
    "a: +.5",
    "a: 12:30:45",
    "a: 1:20.5",
    "a: 2001-12-14",
    "a: .NaN",
    "a: &x [1]\nb: *x",
    "<<: {a: 1}\nb: 2",
    "a: !!str 1",
    "a: !!binary aGVsbG8=",
    "? [a, b]\n: 1",
    "yes: 1",
    "a: 'yes'",
    'a: ""',
    "a: caf\u00e9",
    "%YAML 1.1\n---\na: 1",
    "a: 1\n...\nb: 2\n",
    "- a\n- b",
    "just a string",
    "",
    "# only a comment\n",
]


@pytest.mark.parametrize("text", DIFFERING)
def test_differing_documents_read_as_pyyaml_reads_them(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert outcome(text) == pyyaml_outcome(text, monkeypatch)


BAD = [
    "a: 1\na: 2",
    "a:\n\tb: 1",
    "a: =",
    "a: !foo x",
    "a: *nowhere",
    "a: b: c",
    "a: [1, 2",
    "a: " + "[" * 120 + "]" * 120,
    "::\n- :0\nflow: [:0]\n",
    "a:\n" + "".join(" " * (2 * i) + f"k{i}:\n" for i in range(1, 110)) + " " * 220 + "v: 1",
]


@pytest.mark.parametrize("text", BAD)
def test_bad_documents_get_pyyaml_errors(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert fast(text) is None
    assert outcome(text).startswith("error: ")
    assert outcome(text) == pyyaml_outcome(text, monkeypatch)


_TOKEN_CHARS = "0123456789+-._:eExobnNyYtTfFoOlLsSaAuUrRiI~=<"
_tokens = st.text(alphabet=_TOKEN_CHARS, min_size=1, max_size=8)
_words = st.sampled_from(
    ["yes", "no", "on", "off", "true", "False", "NULL", "~", "null", ".inf", "-.inf", ".nan"]
)
_plain = st.one_of(_tokens, _words, st.from_regex(r"[a-z][a-z0-9.-]{0,12}", fullmatch=True))


def _render(value: Any, style: int) -> str:
    if style == 1:
        return "'" + value.replace("'", "''") + "'"
    if style == 2:
        return '"' + value + '"' if '"' not in value and "\\" not in value else repr(value)
    return str(value)


@settings(max_examples=600, deadline=None)
@given(st.lists(st.tuples(_plain, _plain, st.integers(0, 2)), min_size=1, max_size=6))
def test_random_scalars_agree_with_pyyaml(pairs: list[tuple[str, str, int]]) -> None:
    lines = [f"k{i}{key}: {_render(value, style)}" for i, (key, value, style) in enumerate(pairs)]
    text = "\n".join(lines) + "\n"
    try:
        expected = pyyaml(text)
    except yaml.YAMLError:
        assert fast(text) is None
        return
    got = fast(text)
    if got is not None:
        assert same([got], expected), text


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_plain, st.integers(0, 2)), min_size=1, max_size=5), _plain)
def test_random_keys_and_lists_agree_with_pyyaml(items: list[tuple[str, int]], key: str) -> None:
    text = f"{key}:\n" + "".join(f"- {_render(v, s)}\n" for v, s in items)
    text += f"flow: [{', '.join(_render(v, s) for v, s in items)}]\n"
    try:
        expected = pyyaml(text)
    except yaml.YAMLError:
        assert fast(text) is None
        return
    got = fast(text)
    if got is not None:
        assert same([got], expected), text


def test_documents_share_their_strings() -> None:
    """The same name in thousands of documents is one string object (the typed models
    keep what the reader gave them), on the fast path and on PyYAML's (an anchor)."""
    name = "".join(["bench", "-gw"])  # built at run time: not a constant of this module
    fast = load_documents(f"metadata: {{name: {name}}}\n")[0]
    slow = load_documents(f"a: &x {name}\nb: *x\nc: [{name}]\n")[0]
    json_doc = load_documents(f'{{"n": "{name}"}}', json_file=True)[0]
    assert fast["metadata"]["name"] is slow["c"][0] is json_doc["n"]
    assert fast["metadata"]["name"] == name
