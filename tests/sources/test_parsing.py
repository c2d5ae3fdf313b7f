"""`parsing.parse_file`: a YAML file is parsed per document, with the same objects,
document numbers and diagnostics as reading the whole file at once, and an edit re-parses
only the document it changed."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from propylon.resources.meta import ObjectKey
from propylon.sources import parsing
from propylon.sources.documents import load_documents
from propylon.sources.files import FileSource
from propylon.sources.parsing import FileResult, parse_file
from propylon.store.testing import FAKE_CLUSTER_SCOPED, fake_parse


def gw(name: str, extra: str = "") -> str:
    return (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
        f"metadata:\n  name: {name}\nspec:\n  x: 1\n{extra}"
    )


def parse(text: str, previous: FileResult | None = None, parse_fn: Any = fake_parse) -> FileResult:
    return parse_file(
        "f.yaml",
        text.encode(),
        parse=parse_fn,
        cluster_scoped=FAKE_CLUSTER_SCOPED,
        previous=previous,
    )


def expected_names(text: str) -> list[tuple[str, int]]:
    """(name, document) of each mapping document, from one parse of the whole text."""
    out = []
    for i, doc in enumerate(load_documents(text)):
        if isinstance(doc, Mapping):
            items = doc["items"] if doc["kind"] == "List" else [doc]
            out += [(item["metadata"]["name"], i) for item in items]
    return out


TRICKY = {
    "marker first": "---\n" + gw("a") + "---\n" + gw("b"),
    "no marker first": gw("a") + "---\n" + gw("b"),
    "leading comment": "# header\n---\n" + gw("a") + "--- # trailing comment\n" + gw("b"),
    "empty documents": "---\n---\n" + gw("a") + "---\n\n---\n" + gw("b") + "---\n",
    "end markers": gw("a") + "...\n---\n" + gw("b") + "...\n",
    "crlf": (gw("a") + "---\n" + gw("b")).replace("\n", "\r\n"),
    "dashes inside a value": gw("a", "  note: |\n    ---\n    ----x\n") + "---\n" + gw("b"),
    "list document": gw("a")
    + "---\napiVersion: v1\nkind: List\nitems:\n- "
    + gw("b").replace("\n", "\n  ")
    + "\n---\n"
    + gw("c"),
    "directive": "%YAML 1.1\n---\n" + gw("a") + "---\n" + gw("b"),
}


@pytest.mark.parametrize("text", TRICKY.values(), ids=TRICKY.keys())
def test_documents_are_numbered_as_in_the_whole_file(text: str) -> None:
    result = parse(text)
    got = [(o.key.name, o.document) for o in result.objects]
    assert got == expected_names(text)
    assert result.diagnostics == ()


def test_error_in_a_later_document_reports_its_line_in_the_file() -> None:
    text = gw("a") + "---\n" + gw("b") + "---\nkind: [broken\n"
    result = parse(text)
    (d,) = result.diagnostics
    assert result.failed and d.line == 16 and "invalid YAML" in d.message  # the end of file


def test_duplicate_key_in_a_later_document_names_both_lines_of_the_file() -> None:
    text = gw("a") + "---\n" + gw("b") + "spec: {}\n"
    (d,) = parse(text).diagnostics
    assert d.line == 14 and "first defined at line 12" in d.message


def test_diagnostics_carry_the_document_number_in_the_file() -> None:
    text = gw("a") + "---\n" + gw("b", "  invalid: nope\n")
    (d,) = parse(text).diagnostics
    assert d.document == 1 and d.object == "Gateway default/b" and d.field == "spec.invalid"


def test_an_edit_parses_only_the_document_it_changed() -> None:
    calls: list[str] = []

    def counting_parse(doc: Mapping[str, Any]) -> Any:
        calls.append(doc["metadata"]["name"])
        return fake_parse(doc)

    docs = [gw(f"g{i}") for i in range(500)]
    first = parse("---\n".join(docs), parse_fn=counting_parse)
    assert len(calls) == 500
    calls.clear()
    docs[250] = gw("g250", "  y: 2\n")
    second = parse("---\n".join(docs), previous=first, parse_fn=counting_parse)
    assert calls == ["g250"]
    assert [o.document for o in second.objects] == list(range(500))
    changed = [
        i for i, (a, b) in enumerate(zip(first.objects, second.objects, strict=True)) if a is not b
    ]
    assert changed == [250]


def test_a_document_inserted_at_the_top_renumbers_the_others() -> None:
    first = parse(gw("a") + "---\n" + gw("b"))
    second = parse(gw("new") + "---\n" + gw("a") + "---\n" + gw("b"), previous=first)
    assert [(o.key.name, o.document) for o in second.objects] == [("new", 0), ("a", 1), ("b", 2)]


def test_an_invalid_edit_keeps_the_last_valid_version_in_a_big_file() -> None:
    docs = [gw(f"g{i}") for i in range(50)]
    first = parse("---\n".join(docs))
    docs[10] = gw("g10", "  invalid: nope\n")
    second = parse("---\n".join(docs), previous=first)
    kept = [o for o in second.objects if o.key.name == "g10"]
    assert [(o.resource, o.document) for o in kept] == [(first.objects[10].resource, 10)]
    (d,) = second.diagnostics
    assert d.document == 10 and "keeping the last valid version" in d.message


def test_an_edit_in_a_big_file_touches_only_the_edited_object(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    docs = [gw(f"g{i}") for i in range(2000)]
    path.write_text("---\n".join(docs))
    source = FileSource([tmp_path], parse=fake_parse)
    before = source.load()
    docs[1234] = gw("g1234", "  y: 2\n")
    path.write_text("---\n".join(docs))
    after = source.update([path])
    key = ObjectKey("Gateway", "default", "g1234")
    assert after.touched == frozenset({key})
    assert after.objects[key].resource.model_dump()["spec"] == {"x": 1, "y": 2}
    same = ObjectKey("Gateway", "default", "g5")
    assert after.objects[same] is before.objects[same]


# An edit is parsed in proportion to it (`parsing._parse_edit`): whatever the edit, the
# result must be the one a parse from scratch gives, and `changed` must name every key
# whose objects are not the previous result's.
_PARTS = [
    gw("a"),
    gw("b", "  note: |\n    ---\n    ----x\n"),
    gw("c", "  invalid: nope\n"),
    "# just a comment\n",
    "",
    "---x: 1\n",
    "kind: [broken\n",
    "apiVersion: v1\nkind: List\nitems:\n- " + gw("d").replace("\n", "\n  ") + "\n",
    gw("a", "  y: 2\n"),
    "...\n",
]


def _assemble(parts: list[int]) -> str:
    return "---\n".join(_PARTS[i] for i in parts)


def _same_result(got: FileResult, want: FileResult) -> None:
    assert [(o.key, o.document, o.resource) for o in got.objects] == [
        (o.key, o.document, o.resource) for o in want.objects
    ]
    assert got.diagnostics == want.diagnostics
    assert got.failed == want.failed
    for o in got.objects:  # the key index (patched from the previous one after an edit)
        assert got.positions(o.key) == [i for i, p in enumerate(got.objects) if p.key == o.key]


_EDIT_TEXT = st.text(alphabet="-\n x:.#1", max_size=6)


@settings(max_examples=800, deadline=None)
@given(
    st.lists(st.integers(0, len(_PARTS) - 1), min_size=1, max_size=12),
    st.lists(
        st.tuples(
            st.integers(0, 10_000),
            st.integers(0, 12),
            st.integers(0, len(_PARTS) - 1),
            _EDIT_TEXT,
        ),
        min_size=1,
        max_size=6,
    ),
    st.booleans(),
)
def test_any_edit_parses_as_a_parse_from_scratch(
    start: list[int], edits: list[tuple[int, int, int, str]], keep_text: bool
) -> None:
    saved = parsing._KEEP_TEXT
    parsing._KEEP_TEXT = 0 if keep_text else saved  # the big files' path: text kept
    try:
        _edit_and_compare(start, edits)
    finally:
        parsing._KEEP_TEXT = saved


def _edit_and_compare(start: list[int], edits: list[tuple[int, int, int, str]]) -> None:
    text = _assemble(start)
    result = parse(text)
    for at, cut, part, inserted in edits:
        at = at % (len(text) + 1)
        if cut == 12:  # a whole document more, at a line start
            line = text.rfind("\n", 0, at) + 1
            text = text[:line] + _PARTS[part] + "---\n" + text[line:]
        else:  # characters cut and others typed, anywhere (markers included)
            text = text[:at] + inserted + text[at + cut :]
        nxt = parse(text, previous=result)
        # The reference: the same previous result, parsed chunk by chunk from the start.
        _same_result(nxt, parse(text, previous=dataclasses.replace(result, layout=None)))
        if nxt.changed is not None:
            before: dict[ObjectKey, list[int]] = {}
            for o in result.objects:
                before.setdefault(o.key, []).append(id(o))
            now: dict[ObjectKey, list[int]] = {}
            for o in nxt.objects:
                now.setdefault(o.key, []).append(id(o))
            differing = {k for k in before.keys() | now.keys() if before.get(k) != now.get(k)}
            assert differing <= nxt.changed
        result = nxt


def test_an_edit_in_the_middle_of_a_big_file_parses_one_document() -> None:
    calls: list[str] = []

    def counting_parse(doc: Mapping[str, Any]) -> Any:
        calls.append(doc["metadata"]["name"])
        return fake_parse(doc)

    docs = [gw(f"g{i}") for i in range(2000)]
    first = parse("---\n".join(docs), parse_fn=counting_parse)
    calls.clear()
    docs[1000] = gw("g1000", "  y: 2\n")
    second = parse("---\n".join(docs), previous=first, parse_fn=counting_parse)
    assert calls == ["g1000"]
    assert second.changed == {ObjectKey("Gateway", "default", "g1000")}
    assert second.objects[:1000] == first.objects[:1000]
    assert second.objects[1001:] == first.objects[1001:]
