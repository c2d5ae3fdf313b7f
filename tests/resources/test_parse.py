"""parse_object: validation errors name the field; CRD defaults are applied."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from propylon.resources import (
    Gateway,
    HTTPRoute,
    ResourceError,
    Secret,
    UnknownKindError,
    parse_duration_ms,
    parse_object,
)

GW = "gateway.networking.k8s.io/v1"


def route(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": GW,
        "kind": "HTTPRoute",
        "metadata": {"name": "http-test-app"},
        "spec": spec,
    }


def gateway(listeners: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": GW,
        "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": "infra"},
        "spec": {"gatewayClassName": "cilium", "listeners": listeners, **spec},
    }


def test_error_names_field_in_yaml_spelling() -> None:
    with pytest.raises(ResourceError) as err:
        parse_object(route({"rules": [{"backendRefs": [{"name": "x", "port": "abc"}]}]}))
    e = err.value
    assert (e.kind, e.namespace, e.name) == ("HTTPRoute", "default", "http-test-app")
    assert e.field == "spec.rules[0].backendRefs[0].port"
    assert str(e).startswith(
        "HTTPRoute default/http-test-app: spec.rules[0].backendRefs[0].port: "
        "Input should be a valid integer"
    )


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (
            gateway([{"name": "web", "port": 80, "protocol": "HTTP"}])
            | {"spec": {"listeners": []}},
            "spec.gatewayClassName",
        ),
        (gateway([{"name": "web", "protocol": "HTTP"}]), "spec.listeners[0].port"),
        (gateway([{"name": "web", "port": 70000, "protocol": "HTTP"}]), "spec.listeners[0].port"),
        (gateway([{"name": "Web!", "port": 80, "protocol": "HTTP"}]), "spec.listeners[0].name"),
        (
            gateway([{"name": "w", "port": 80, "protocol": "HTTP", "hostname": "1.2.3.4:80"}]),
            "spec.listeners[0].hostname",
        ),
        (
            route({"rules": [{"matches": [{"path": {"type": "Exact", "value": "foo"}}]}]}),
            "spec.rules[0].matches[0].path",
        ),
        (route({"hostnames": ["Bad_Host"]}), "spec.hostnames[0]"),
        (
            route({"rules": [{"timeouts": {"request": "10 seconds"}}]}),
            "spec.rules[0].timeouts.request",
        ),
    ],
)
def test_invalid_fields(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(ResourceError) as err:
        parse_object(doc)
    assert err.value.field == field


def test_duplicate_listener_names() -> None:
    listeners = [{"name": "web", "port": 80, "protocol": "HTTP"}] * 2
    with pytest.raises(ResourceError, match="Listener name must be unique"):
        parse_object(gateway(listeners))


def test_unknown_kind() -> None:
    with pytest.raises(UnknownKindError):
        parse_object({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}})
    with pytest.raises(UnknownKindError, match="served versions"):
        parse_object(
            {
                "apiVersion": "gateway.networking.k8s.io/v9",
                "kind": "Gateway",
                "metadata": {"name": "d"},
            }
        )


def test_defaults_like_the_api_server() -> None:
    r = parse_object(
        route(
            {
                "parentRefs": [{"name": "gw"}],
                "rules": [{"backendRefs": [{"name": "s", "port": 80}]}],
            }
        )
    )
    assert isinstance(r, HTTPRoute)
    assert r.metadata.namespace == "default"
    rule = r.spec.rules[0]
    assert rule.matches[0].path.type == "PathPrefix" and rule.matches[0].path.value == "/"
    ref = rule.backend_refs[0]
    assert (ref.group, ref.kind, ref.weight) == ("", "Service", 1)
    assert (r.spec.parent_refs[0].group, r.spec.parent_refs[0].kind) == (
        "gateway.networking.k8s.io",
        "Gateway",
    )
    # No rules at all: one rule matching everything.
    empty = parse_object(route({}))
    assert isinstance(empty, HTTPRoute) and empty.spec.rules[0].matches[0].path.value == "/"

    g = parse_object(
        gateway(
            [
                {
                    "name": "web",
                    "port": 80,
                    "protocol": "HTTPS",
                    "tls": {"certificateRefs": [{"name": "c"}]},
                }
            ]
        )
    )
    assert isinstance(g, Gateway)
    li = g.spec.listeners[0]
    assert li.allowed_routes.namespaces.from_ == "Same"
    assert li.tls is not None and li.tls.mode == "Terminate"
    assert (li.tls.certificate_refs[0].group, li.tls.certificate_refs[0].kind) == ("", "Secret")


def test_cluster_scoped_kinds_have_no_namespace() -> None:
    gc = parse_object(
        {
            "apiVersion": GW,
            "kind": "GatewayClass",
            "metadata": {"name": "c", "namespace": "x"},
            "spec": {"controllerName": "io.cilium/gateway-controller"},
        }
    )
    assert gc.metadata.namespace == ""
    assert gc.key == ("GatewayClass", "", "c")


def test_round_trip_camel_case() -> None:
    doc = route(
        {
            "parentRefs": [{"name": "gw", "sectionName": "web"}],
            "rules": [{"backendRefs": [{"name": "s", "port": 80}]}],
        }
    )
    dumped = parse_object(doc).model_dump(by_alias=True, exclude_none=True, mode="json")
    assert dumped["apiVersion"] == GW
    assert dumped["spec"]["parentRefs"][0]["sectionName"] == "web"
    assert dumped["spec"]["rules"][0]["backendRefs"][0]["port"] == 80
    assert parse_object(dumped) == parse_object(doc)


def test_secret_data_and_string_data() -> None:
    s = parse_object(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s"},
            "data": {"a": base64.b64encode(b"one").decode()},
            "stringData": {"b": "two"},
        }
    )
    assert isinstance(s, Secret)
    assert s.decoded("a") == b"one" and s.decoded("b") == b"two"
    with pytest.raises(ResourceError) as err:
        parse_object(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "!!!"}}
        )
    assert err.value.field == "data"


@pytest.mark.parametrize(
    ("text", "ms"), [("500ms", 500), ("1s", 1000), ("1h2m", 3_720_000), ("0s", 0)]
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


def test_parsed_objects_hold_their_fields_in_slots() -> None:
    """Memory: every nested structure of every object is a slotted record (no dict and
    no set of given fields per object); copying with changes leaves the original as it
    was, and the same document parses to an equal object."""
    a = parse_object(route({"hostnames": ["a.test"], "parentRefs": [{"name": "gw"}]}))
    assert isinstance(a, HTTPRoute)
    for struct in (a, a.metadata, a.spec, a.spec.parent_refs[0], a.spec.rules[0]):
        assert not hasattr(struct, "__dict__"), type(struct).__name__
    changed = a.metadata.model_copy(update={"generation": 7})
    assert (changed.generation, a.metadata.generation) == (7, 1)
    assert changed.name == a.metadata.name
    with pytest.raises(TypeError, match="ObjectMeta has no field generaton"):
        a.metadata.model_copy(update={"generaton": 7})
    assert a == parse_object(route({"hostnames": ["a.test"], "parentRefs": [{"name": "gw"}]}))
    assert a != parse_object(route({"hostnames": ["b.test"], "parentRefs": [{"name": "gw"}]}))


def test_objects_without_labels_share_one_read_only_empty_dict() -> None:
    """Memory: no dict per object for absent labels and annotations; the shared one
    refuses changes, so one object's labels can never show up on another."""
    a = parse_object(route({"hostnames": ["a.test"]}))
    b = parse_object(route({"hostnames": ["b.test"]}))
    assert a.metadata.labels == {} and a.metadata.labels is b.metadata.annotations
    with pytest.raises(TypeError, match="read-only"):
        a.metadata.labels["x"] = "y"
    with pytest.raises(TypeError, match="read-only"):
        a.metadata.annotations.update(x="y")
    assert b.metadata.labels == {}
    copied = dict(a.metadata.labels)
    copied["x"] = "y"
    assert copied == {"x": "y"}
    assert a.model_dump()["metadata"]["labels"] == {}
    labelled = parse_object(
        {**route({"hostnames": ["c.test"]}), "metadata": {"name": "c", "labels": {"k": "v"}}}
    )
    assert labelled.metadata.labels == {"k": "v"}
    labelled.metadata.labels["k2"] = "v2"  # given labels are the object's own dict
    assert a.metadata.labels == {}


def test_object_key_parses_back_from_its_text() -> None:
    from propylon.resources.meta import ObjectKey

    for key in (ObjectKey("HTTPRoute", "ns-1", "r.1"), ObjectKey("GatewayClass", "", "cilium")):
        assert ObjectKey.parse(str(key)) == key


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"hostnames": "a.test"}, "spec.hostnames", "Input should be a valid list"),
        (
            {"hostnames": [f"h{i}.test" for i in range(17)]},
            "spec.hostnames",
            "List should have at most 16 items after validation, not 17",
        ),
        (
            {"rules": [{"backendRefs": [{"name": "s", "port": 80, "filters": "x"}]}]},
            "spec.rules[0].backendRefs[0].filters",
            "Input should be a valid list",
        ),
        (
            {"parentRefs": [3]},
            "spec.parentRefs[0]",
            "Input should be a valid dictionary or instance of ParentReference",
        ),
    ],
)
def test_list_fields_are_reported_as_lists(spec: dict[str, Any], field: str, message: str) -> None:
    """The records keep lists as tuples and nested objects as dataclasses: the messages
    still speak of lists and dictionaries, as the YAML does (and as they always did)."""
    with pytest.raises(ResourceError) as info:
        parse_object(route(spec))
    assert (info.value.field, info.value.message) == (field, message)
    parsed = parse_object(route({"hostnames": ["a.test"]}))
    assert parsed.model_dump()["spec"]["hostnames"] == ["a.test"]  # JSON lists again


def test_endpoint_addresses_at_least_one() -> None:
    doc = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "e"},
        "addressType": "IPv4",
        "endpoints": [{"addresses": []}],
    }
    with pytest.raises(ResourceError) as info:
        parse_object(doc)
    assert info.value.field == "endpoints[0].addresses"
    assert info.value.message == "List should have at least 1 item after validation, not 0"
