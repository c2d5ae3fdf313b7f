from __future__ import annotations

import json
from pathlib import Path

import pytest
from shared_paths import CONFORMANCE

from propylon.resources.meta import ObjectKey
from propylon.sources.files import FileSource, load_paths
from propylon.store import Diagnostic, Origin, Severity
from propylon.store.testing import fake_parse

GW = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: {name}
spec:
  gatewayClassName: cilium
"""
ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: {name}
  namespace: {ns}
spec:
  hostnames: [{host}]
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load(*paths: Path) -> FileSource:
    return FileSource(list(paths), parse=fake_parse)


def gw_key(name: str = "gw") -> ObjectKey:
    return ObjectKey("Gateway", "default", name)


def messages(diags: tuple[Diagnostic, ...]) -> list[str]:
    return [str(d) for d in diags]


def test_multi_document_yaml_and_empty_documents(tmp_path: Path) -> None:
    f = write(
        tmp_path / "a.yaml",
        "---\n"
        + GW.format(name="one")
        + "---\n---\n"
        + ROUTE.format(name="r", ns="team", host="x.example"),
    )
    cs = load(f).load()
    assert cs.diagnostics == ()
    assert set(cs.objects) == {gw_key("one"), ObjectKey("HTTPRoute", "team", "r")}
    # A leading "---" opens the first document; an empty document still counts.
    assert cs.objects[gw_key("one")].origin == Origin(str(f), 0)
    assert cs.objects[ObjectKey("HTTPRoute", "team", "r")].origin == Origin(str(f), 2)


def test_directory_recursive_extensions_and_hidden(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", GW.format(name="a"))
    write(tmp_path / "sub" / "b.yml", GW.format(name="b"))
    write(
        tmp_path / "sub" / "deeper" / "c.json",
        json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "c"}, "spec": {}}),
    )
    write(tmp_path / "notes.txt", "not: [yaml")
    write(tmp_path / ".hidden.yaml", GW.format(name="hidden"))
    write(tmp_path / ".git" / "x.yaml", GW.format(name="git"))
    cs = load(tmp_path).load()
    assert cs.diagnostics == ()
    assert set(cs.objects) == {gw_key("a"), gw_key("b"), ObjectKey("Service", "default", "c")}


def test_lists_json_and_yaml(tmp_path: Path) -> None:
    items = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s1"}, "spec": {}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s2", "namespace": "n"}},
    ]
    f = write(
        tmp_path / "list.json",
        json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent="\t"),
    )
    g = write(
        tmp_path / "list.yaml",
        "apiVersion: v1\nkind: GatewayList\nitems:\n- "
        + GW.format(name="fromlist").replace("\n", "\n  "),
    )
    cs = load(f, g).load()
    assert cs.diagnostics == ()
    assert set(cs.objects) == {
        ObjectKey("Service", "default", "s1"),
        ObjectKey("Service", "n", "s2"),
        gw_key("fromlist"),
    }


def test_invalid_yaml_reports_file_and_line(tmp_path: Path) -> None:
    f = write(tmp_path / "bad.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: [x\n")
    cs = load(f).load()
    assert cs.objects == {}
    (d,) = cs.diagnostics
    assert d.severity is Severity.ERROR and d.file == str(f) and d.line is not None
    assert str(d).startswith(f"{f}:{d.line}: line {d.line}, column")
    assert "invalid YAML" in d.message


def test_invalid_json_reports_line(tmp_path: Path) -> None:
    f = write(tmp_path / "bad.json", '{\n  "kind": "Service",\n  oops\n}\n')
    (d,) = load(f).load().diagnostics
    assert d.line == 3 and "invalid JSON" in d.message


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    f = write(tmp_path / "dup.yaml", GW.format(name="x") + "spec: {}\n")
    (d,) = load(f).load().diagnostics
    assert "'spec' is defined twice" in d.message and d.line == 7


def test_document_errors_name_file_document_object_field(tmp_path: Path) -> None:
    f = write(
        tmp_path / "errs.yaml",
        "\n---\n".join(
            [
                "- just\n- a list",
                "kind: Gateway\nmetadata:\n  name: noapi",
                "apiVersion: v1\nmetadata:\n  name: nokind",
                "apiVersion: v1\nkind: Service\nmetadata: {}",
                "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w",
                ROUTE.format(name="bad", ns="team", host="h") + "  invalid: port must be > 0\n",
                GW.format(name="good"),
            ]
        ),
    )
    cs = load(f).load()
    assert set(cs.objects) == {gw_key("good")}
    assert messages(cs.diagnostics) == [
        f"{f}#0: a document must be a mapping (an object), not a list",
        f"{f}#1: Gateway default/noapi: apiVersion: required",
        f"{f}#2: kind: required",
        f"{f}#3: Service: metadata.name: required",
        f"{f}#4: Widget default/w: kind: unknown kind 'Widget'; ignored",
        f"{f}#5: HTTPRoute team/bad: spec.invalid: port must be > 0",
    ]
    severities = [d.severity for d in cs.diagnostics]
    assert severities.count(Severity.WARNING) == 1 and len(cs.errors) == 5


def test_list_item_errors_carry_item_path(tmp_path: Path) -> None:
    f = write(
        tmp_path / "l.yaml",
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n"
        "  metadata: {}\n- 3\n",
    )
    assert messages(load(f).load().diagnostics) == [
        f"{f}#0: Service: items[0].metadata.name: required",
        f"{f}#0: items[1]: a list item must be a mapping (an object), not a number",
    ]


def test_missing_path(tmp_path: Path) -> None:
    (d,) = load(tmp_path / "nope").load().diagnostics
    assert str(d) == f"{tmp_path / 'nope'}: no such file or directory"


def test_duplicates_first_by_path_then_previous_wins(tmp_path: Path) -> None:
    a = write(tmp_path / "b.yaml", GW.format(name="gw"))
    src = load(tmp_path)
    cs = src.load()
    assert cs.objects[gw_key()].origin == Origin(str(a), 0)
    # A duplicate appears in a file sorted earlier: the one already loaded stays.
    early = write(tmp_path / "a.yaml", GW.format(name="gw").replace("cilium", "other"))
    cs = src.load()
    assert cs.objects[gw_key()].origin == Origin(str(a), 0)
    (d,) = cs.diagnostics
    assert str(d) == (
        f"{early}#0: Gateway default/gw: duplicate object: already defined at "
        f"{a}#0; this definition is ignored"
    )
    # A fresh loader (no history) keeps the first by sorted path.
    cs = load(tmp_path).load()
    assert cs.objects[gw_key()].origin == Origin(str(early), 0)
    assert cs.diagnostics[0].file == str(a)
    # When the winner goes away, the other takes over without complaint.
    a.unlink()
    cs = src.load()
    assert cs.objects[gw_key()].origin == Origin(str(early), 0) and cs.diagnostics == ()


def test_duplicates_within_one_file(tmp_path: Path) -> None:
    f = write(tmp_path / "a.yaml", GW.format(name="gw") + "---\n" + GW.format(name="gw"))
    cs = load(f).load()
    assert cs.objects[gw_key()].origin == Origin(str(f), 0)
    assert cs.diagnostics[0].document == 1 and "already defined at" in cs.diagnostics[0].message


def test_bad_yaml_keeps_last_good_objects(tmp_path: Path) -> None:
    f = write(tmp_path / "a.yaml", GW.format(name="one") + "---\n" + GW.format(name="two"))
    src = load(tmp_path)
    first = src.load()
    write(f, "apiVersion: v1\nkind: [broken\n")
    cs = src.load([f])
    assert set(cs.objects) == {gw_key("one"), gw_key("two")}
    assert cs.objects[gw_key("one")].resource == first.objects[gw_key("one")].resource
    (d,) = cs.diagnostics
    assert d.is_error and "keeping the 2 objects last read from it" in d.message
    # Fixed again: back to normal, and the removal of an object is honoured.
    write(f, GW.format(name="one"))
    cs = src.load([f])
    assert set(cs.objects) == {gw_key("one")} and cs.diagnostics == ()


def test_invalid_object_keeps_last_valid_version(tmp_path: Path) -> None:
    f = write(tmp_path / "r.yaml", ROUTE.format(name="r", ns="default", host="old"))
    src = load(f)
    src.load()
    write(f, ROUTE.format(name="r", ns="default", host="new") + "  invalid: nope\n")
    cs = src.load([f])
    route = cs.objects[ObjectKey("HTTPRoute", "default", "r")].resource
    assert route.model_dump()["spec"]["hostnames"] == ["old"]
    assert "keeping the last valid version" in cs.diagnostics[0].message


def test_unchanged_files_are_not_parsed_again(tmp_path: Path) -> None:
    calls: list[str] = []

    def counting_parse(doc: object) -> object:
        calls.append(doc["metadata"]["name"])  # type: ignore[index]
        return fake_parse(doc)  # type: ignore[arg-type]

    write(tmp_path / "a.yaml", GW.format(name="a"))
    b = write(tmp_path / "b.yaml", GW.format(name="b"))
    src = FileSource([tmp_path], parse=counting_parse)  # type: ignore[arg-type]
    src.load()
    assert sorted(calls) == ["a", "b"]
    calls.clear()
    src.load()
    assert calls == []
    src.load([b])  # forced re-read, same bytes: no parse
    assert calls == []
    write(b, GW.format(name="b2"))
    cs = src.load([b])
    assert calls == ["b2"] and gw_key("b2") in cs.objects and gw_key("b") not in cs.objects


def test_rescan_that_finds_nothing_new_returns_the_last_changeset(tmp_path: Path) -> None:
    """The watcher's periodic rescan (`load()` without events) costs the complete set's
    assembly only when a file changed: otherwise it is the previous result itself, and
    every kind of change in between is still seen."""
    a = write(tmp_path / "a.yaml", GW.format(name="a"))
    src = load(tmp_path)
    first = src.load()
    assert src.load() is first
    b = write(tmp_path / "b.yaml", GW.format(name="b"))
    patched = src.update([b])  # a watch event: the previous result patched
    assert set(patched.objects) == {gw_key("a"), gw_key("b")}
    assert src.load() is patched
    b.unlink()  # missed by the watcher: the rescan finds it
    gone = src.load()
    assert set(gone.objects) == {gw_key("a")}
    assert src.load() is gone
    write(a, GW.format(name="a2"))
    assert set(src.load().objects) == {gw_key("a2")}
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "c.yaml", "kind: [broken\n")
    broken = src.load()
    assert [d.file for d in broken.diagnostics] == [str(tmp_path / "sub" / "c.yaml")]
    again = src.load()  # a failed file is read again each time: same objects, same problem
    assert set(again.objects) == set(broken.objects) and again.diagnostics == broken.diagnostics


def test_timestamps_stay_strings(tmp_path: Path) -> None:
    f = write(tmp_path / "a.yaml", GW.format(name="a") + "  when: 2024-01-01T00:00:00Z\n")
    (stored,) = load(f).load().objects.values()
    assert stored.resource.model_dump()["spec"]["when"] == "2024-01-01T00:00:00Z"


def test_load_paths_with_real_resources_on_conformance_manifests() -> None:
    manifests = CONFORMANCE / "base" / "manifests.yaml"
    if not manifests.exists():
        pytest.skip("conformance data not available")
    cs = load_paths([manifests])
    kinds = {key.kind for key in cs.objects}
    assert {"Gateway", "GatewayClass", "Service"} <= kinds or "Gateway" in kinds
    assert not cs.errors, [str(d) for d in cs.errors]
