"""Policy verdicts in the xDS Envoy gets (pure): RBAC filters at the Listener, an
upstream RBAC filter on a Cluster, endpoints left out; and the incremental path (one
Translator and PolicyEngine across changes) gives what a fresh translation does."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from google.protobuf.json_format import MessageToDict

from propylon import gatewayapi
from propylon.envoy import Translator, translate
from propylon.envoy.output import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE
from propylon.model import Model, ProxyOptions
from propylon.policy import PolicyEngine
from propylon.resources import ObjectKey, Resource, parse_object
from propylon.values import Values

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "policy"
LISTENER = "default/bookinfo/8080"
CLUSTER = "default:details:9080"


def objects(*policies: str, extra: Iterable[dict[str, Any]] = ()) -> dict[ObjectKey, Resource]:
    found: dict[ObjectKey, Resource] = {}
    paths = [
        *sorted(EXAMPLE.glob("*.yaml")),
        *(EXAMPLE.parent / "cilium-policies" / f"{p}.yaml" for p in policies),
    ]
    docs = [d for p in paths for d in yaml.safe_load_all(p.read_text()) if d]
    for doc in [*docs, *extra]:
        obj = parse_object(doc)
        found[obj.key] = obj
    return found


def model_of(objs: dict[ObjectKey, Resource]) -> Model:
    inputs = gatewayapi.Inputs(
        objects=objs, values=Values(), previous_addresses={}, default_pool=("127.10.0.0/16",)
    )
    return PolicyEngine().apply(gatewayapi.build(inputs).model, objs)


def xds(model: Model) -> dict[str, dict[str, Any]]:
    by_type = translate(model, ProxyOptions()).by_type()
    return {
        t: {name: MessageToDict(enc.message) for name, enc in items.items()}
        for t, items in by_type.items()
    }


def http_filters(listener: dict[str, Any]) -> list[dict[str, Any]]:
    hcm = listener["filterChains"][0]["filters"][0]["typedConfig"]
    return list(hcm["httpFilters"])


def test_no_policy_adds_nothing() -> None:
    out = xds(model_of(objects()))
    text = str(out)
    assert "rbac" not in text and "Access denied" not in text
    assert "propylon.policy" not in text


def test_external_lockdown_is_an_allow_rbac_for_in_cluster_sources() -> None:
    out = xds(model_of(objects("external-lockdown")))
    listener = out[LISTENER_TYPE][LISTENER]
    filters = {f["name"]: f for f in http_filters(listener)}
    names = list(filters)
    assert names.index("propylon.policy.deny") + 1 == names.index("propylon.policy.allow")
    assert names.index("propylon.policy.allow") < names.index("envoy.filters.http.router")
    allow = filters["propylon.policy.allow"]["typedConfig"]["rules"]
    assert allow.get("action", "ALLOW") == "ALLOW"
    ((name, policy),) = allow["policies"].items()
    assert "CiliumClusterwideNetworkPolicy/external-lockdown spec.ingress[0]" in name
    assert policy["principals"] == [
        {"directRemoteIp": {"addressPrefix": "127.0.0.7", "prefixLen": 32}}
    ]
    hcm = listener["filterChains"][0]["filters"][0]["typedConfig"]
    assert hcm["localReplyConfig"]["mappers"][0]["body"]["inlineString"] == "Access denied\r\n"
    # The backend is in-cluster: the ingress identity reaches it, the cluster is plain.
    assert "httpFilters" not in str(out[CLUSTER_TYPE][CLUSTER])


def test_default_deny_sends_the_cluster_to_the_deny_listener() -> None:
    """A refused cluster keeps its Cluster message; its one endpoint becomes the
    internal listener that answers 403 (an EDS change, not a cluster update)."""
    out = xds(model_of(objects("default-deny")))
    plain = xds(model_of(objects()))
    assert out[CLUSTER_TYPE][CLUSTER] == plain[CLUSTER_TYPE][CLUSTER]
    (locality,) = out[ENDPOINT_TYPE][CLUSTER]["endpoints"]
    (endpoint,) = locality["lbEndpoints"]
    internal = endpoint["endpoint"]["address"]["envoyInternalAddress"]
    assert internal == {"serverListenerName": "propylon/policy-deny"}
    deny = out[LISTENER_TYPE]["propylon/policy-deny"]
    assert "Access denied" in str(deny) and "403" in str(deny) and "internalListener" in deny
    assert "propylon.policy" not in str(out[LISTENER_TYPE][LISTENER])


def test_l7_rules_at_the_backend_are_an_upstream_rbac_filter() -> None:
    l7 = {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "details-l7", "namespace": "default"},
        "spec": {
            "endpointSelector": {"matchLabels": {"app": "details"}},
            "ingress": [
                {
                    "fromEntities": ["ingress"],
                    "toPorts": [
                        {"ports": [{"port": "9080"}], "rules": {"http": [{"method": "GET"}]}}
                    ],
                }
            ],
        },
    }
    out = xds(model_of(objects(extra=[l7])))
    cluster = str(out[CLUSTER_TYPE][CLUSTER])
    assert "propylon.policy.backend" in cluster and "upstream_codec" in cluster
    assert "':method'" in cluster and "'GET'" in cluster


def test_backend_not_admitting_the_ingress_identity_is_left_out() -> None:
    only_clients = {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "details-from-clients", "namespace": "default"},
        "spec": {
            "endpointSelector": {"matchLabels": {"app": "details"}},
            "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "client"}}]}],
        },
    }
    out = xds(model_of(objects(extra=[only_clients])))
    assert not out[ENDPOINT_TYPE][CLUSTER].get("endpoints", [{}])[0].get("lbEndpoints")
    assert "propylon.policy.backend" not in str(out[CLUSTER_TYPE][CLUSTER])


def test_one_translator_across_policy_changes_equals_fresh_translations() -> None:
    translator, engine, builder = Translator(), PolicyEngine(), gatewayapi.Builder()
    previous: dict[ObjectKey, Resource] = {}
    steps = [
        (),
        ("external-lockdown",),
        ("external-lockdown", "allow-ingress-cidr"),
        ("default-deny",),
        ("default-deny", "allow-ingress-cluster"),
        (),
    ]
    for step in steps:
        objs = objects(*step)
        changed = {k for k in objs.keys() | previous.keys() if objs.get(k) != previous.get(k)}
        inputs = gatewayapi.Inputs(
            objects=objs, values=Values(), previous_addresses={}, default_pool=("127.10.0.0/16",)
        )
        model = engine.apply(builder.build(inputs, changed).model, objs, changed)
        got = translator.translate(model, ProxyOptions()).by_type()
        want = translate(model_of(objs), ProxyOptions()).by_type()
        assert {t: {n: e.data for n, e in v.items()} for t, v in got.items()} == {
            t: {n: e.data for n, e in v.items()} for t, v in want.items()
        }, step
        previous = objs
