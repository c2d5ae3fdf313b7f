"""ListenerSets (GEP-1713) in build(): which may attach, precedence and conflicts,
status, route attachment through a ListenerSet parentRef, ReferenceGrants from the
ListenerSet's namespace, and what reaches the model."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml
from selfsigned_cert import self_signed

from propylon.gatewayapi import Builder, Inputs, build
from propylon.resources import ObjectKey, Resource, parse_object

NS = "infra"

BASE = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: cilium}}
spec: {{controllerName: io.cilium/gateway-controller}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: {NS}}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: team-a, labels: {{listeners: allowed}}}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: team-b}}
---
apiVersion: v1
kind: Service
metadata: {{name: svc, namespace: {NS}}}
spec: {{ports: [{{port: 8080}}]}}
"""


def gateway(allowed: str | None = "All", *, selector: str = "", extra: str = "") -> str:
    allowed_listeners = (
        f"""
  allowedListeners:
    namespaces:
      from: {allowed}{selector}"""
        if allowed is not None
        else ""
    )
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: {NS}}}
spec:
  gatewayClassName: cilium{allowed_listeners}
  listeners:
  - {{name: web, port: 80, protocol: HTTP, hostname: gw.example.com,
      allowedRoutes: {{namespaces: {{from: All}}}}}}{extra}
"""


def listener_set(
    name: str,
    listeners: str,
    *,
    namespace: str = NS,
    created: str = "2024-01-01T00:00:00Z",
    kind: str = "ListenerSet",
    api: str = "gateway.networking.k8s.io/v1",
) -> str:
    return f"""
apiVersion: {api}
kind: {kind}
metadata: {{name: {name}, namespace: {namespace}, creationTimestamp: "{created}"}}
spec:
  parentRef: {{name: gw, namespace: {NS}}}
  listeners:
{listeners}
"""


def http(name: str, host: str, port: int = 80, frm: str = "Same") -> str:
    return (
        f"  - {{name: {name}, port: {port}, protocol: HTTP, hostname: {host},"
        f" allowedRoutes: {{namespaces: {{from: {frm}}}}}}}"
    )


def route(name: str, parents: str, path: str = "/", namespace: str = NS) -> str:
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  parentRefs: {parents}
  rules:
  - matches: [{{path: {{type: PathPrefix, value: {path}}}}}]
    backendRefs: [{{name: svc, namespace: {NS}, port: 8080}}]
"""


def objects(*docs: str) -> dict[ObjectKey, Resource]:
    out: dict[ObjectKey, Resource] = {}
    for doc in yaml.safe_load_all("---\n".join([BASE, *docs])):
        if doc:
            obj = parse_object(doc)
            out[obj.key] = obj
    return out


def run(*docs: str) -> Any:
    return build(Inputs(objects=objects(*docs), default_pool=("127.10.0.0/16",)))


def cond(status: dict[str, Any], type_: str) -> tuple[str, str]:
    (found,) = [c for c in status["conditions"] if c["type"] == type_]
    return found["status"], found["reason"]


def ls_key(name: str, namespace: str = NS, kind: str = "ListenerSet") -> ObjectKey:
    return ObjectKey(kind, namespace, name)


GW = ObjectKey("Gateway", NS, "gw")
LS_REF = "[{group: gateway.networking.k8s.io, kind: ListenerSet, name: ls}]"
TEAM_B_REF = LS_REF.replace("name: ls", "name: ls, namespace: team-b")


def listener(status: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [li for li in status["listeners"] if li["name"] == name]
    return found


def hosts(result: Any) -> set[str]:
    return {h for li in result.model.listeners for vh in li.http for h in vh.hostnames}


# --- which ListenerSets may attach ----------------------------------------------------


@pytest.mark.parametrize(
    ("allowed", "selector", "namespace", "ok"),
    [
        (None, "", NS, False),  # no allowedListeners: None
        ("None", "", NS, False),
        ("Same", "", NS, True),
        ("Same", "", "team-a", False),
        ("All", "", "team-b", True),
        ("Selector", "\n      selector: {matchLabels: {listeners: allowed}}", "team-a", True),
        ("Selector", "\n      selector: {matchLabels: {listeners: allowed}}", "team-b", False),
    ],
)
def test_allowed_listeners(allowed: str | None, selector: str, namespace: str, ok: bool) -> None:
    result = run(
        gateway(allowed, selector=selector),
        listener_set("ls", http("extra", "ls.example.com"), namespace=namespace),
        route(
            "r",
            LS_REF.replace("name: ls", f"name: ls, namespace: {namespace}"),
            namespace=namespace,
        ),
    )
    status = result.statuses[ls_key("ls", namespace)]
    expected = ("True", "Accepted") if ok else ("False", "NotAllowed")
    assert cond(status, "Accepted") == expected
    assert cond(status, "Programmed") == (("True", "Programmed") if ok else ("False", "NotAllowed"))
    assert result.statuses[GW].get("attachedListenerSets", 0) == (1 if ok else 0)
    assert ("ls.example.com" in hosts(result)) is ok
    # the Gateway's status lists its own listeners only
    assert [li["name"] for li in result.statuses[GW]["listeners"]] == ["web"]


def test_listener_set_of_another_gateway_class_has_no_status() -> None:
    result = run(
        gateway().replace("gatewayClassName: cilium", "gatewayClassName: other"),
        listener_set("ls", http("extra", "ls.example.com")),
    )
    assert ls_key("ls") not in result.statuses


def test_parent_not_accepted() -> None:
    gw = gateway().replace("protocol: HTTP, hostname: gw.example.com", "protocol: SCTP")
    result = run(gw, listener_set("ls", http("extra", "ls.example.com")))
    assert cond(result.statuses[GW], "Accepted")[0] == "False"
    status = result.statuses[ls_key("ls")]
    assert cond(status, "Accepted") == ("False", "ParentNotAccepted")
    assert cond(status, "Programmed") == ("False", "ParentNotAccepted")


# --- precedence and conflicts -------------------------------------------------------------


def test_hostname_conflict_loser_is_the_later_listener() -> None:
    result = run(
        gateway(),
        # newer, but "a" before "b" by name must not matter: age first
        listener_set(
            "a-newer",
            http("dup", "shared.example.com") + "\n" + http("own-a", "a.example.com"),
            created="2024-02-01T00:00:00Z",
        ),
        listener_set(
            "b-older",
            http("dup", "shared.example.com") + "\n" + http("same-as-gw", "gw.example.com"),
            created="2024-01-01T00:00:00Z",
        ),
    )
    older, newer = result.statuses[ls_key("b-older")], result.statuses[ls_key("a-newer")]
    winner = listener(older, "dup")
    assert cond(winner, "Accepted") == ("True", "Accepted")
    assert cond(winner, "Conflicted") == ("False", "NoConflicts")
    loser = listener(newer, "dup")
    assert cond(loser, "Accepted") == ("False", "HostnameConflict")
    assert cond(loser, "Programmed") == ("False", "HostnameConflict")
    assert cond(loser, "Conflicted") == ("True", "HostnameConflict")
    # the Gateway's own listener outranks every ListenerSet
    assert cond(listener(older, "same-as-gw"), "Conflicted") == ("True", "HostnameConflict")
    assert cond(listener(result.statuses[GW], "web"), "Conflicted") == ("False", "NoConflicts")
    # both keep one valid listener: accepted, with ListenersNotValid saying which is not
    assert cond(older, "Accepted") == ("True", "ListenersNotValid")
    assert cond(newer, "Accepted") == ("True", "ListenersNotValid")
    assert result.statuses[GW]["attachedListenerSets"] == 2


def test_same_age_ties_break_by_namespace_then_name() -> None:
    result = run(
        gateway(),
        listener_set("b", http("x", "shared.example.com")),
        listener_set("a", http("x", "shared.example.com"), namespace="team-a"),
    )
    # "infra/b" < "team-a/a"
    assert cond(result.statuses[ls_key("b")], "Accepted") == ("True", "Accepted")
    status = result.statuses[ls_key("a", "team-a")]
    assert cond(status, "Accepted") == ("False", "ListenersNotValid")
    assert cond(listener(status, "x"), "Conflicted") == ("True", "HostnameConflict")
    assert result.statuses[GW]["attachedListenerSets"] == 1


def test_protocol_conflict_even_for_a_protocol_not_served() -> None:
    result = run(
        gateway(),
        listener_set(
            "ls",
            "  - {name: raw, port: 80, protocol: TCP}\n"
            "  - {name: sctp, port: 80, protocol: SCTP}\n" + http("ok", "ok.example.com"),
        ),
    )
    assert cond(listener(result.statuses[ls_key("ls")], "sctp"), "Accepted") == (
        "False",
        "ProtocolConflict",
    )
    status = result.statuses[ls_key("ls")]
    raw = listener(status, "raw")
    assert cond(raw, "Accepted") == ("False", "ProtocolConflict")
    assert cond(raw, "Conflicted") == ("True", "ProtocolConflict")
    assert cond(listener(status, "ok"), "Accepted") == ("True", "Accepted")
    assert cond(status, "Programmed") == ("True", "Programmed")


def test_udp_shares_a_tcp_port_and_stream_listeners_ignore_hostnames() -> None:
    result = run(
        gateway(),
        listener_set(
            "first",
            "  - {name: dns, port: 80, protocol: UDP}\n  - {name: raw, port: 9000, protocol: TCP}",
        ),
        listener_set(
            "second",
            "  - {name: raw, port: 9000, protocol: TCP}\n" + http("ok", "ok.example.com"),
            created="2024-02-01T00:00:00Z",
        ),
    )
    first = result.statuses[ls_key("first")]
    # UDP port 80 is not the Gateway's HTTP (TCP) port 80
    assert cond(listener(first, "dns"), "Conflicted") == ("False", "NoConflicts")
    assert cond(listener(first, "raw"), "Accepted") == ("True", "Accepted")
    second = result.statuses[ls_key("second")]
    assert cond(listener(second, "raw"), "Conflicted") == ("True", "HostnameConflict")
    assert cond(second, "Accepted") == ("True", "ListenersNotValid")


def test_only_invalid_listeners_is_listeners_not_valid() -> None:
    result = run(gateway(), listener_set("ls", http("clash", "gw.example.com")))
    status = result.statuses[ls_key("ls")]
    assert cond(status, "Accepted") == ("False", "ListenersNotValid")
    assert cond(status, "Programmed") == ("False", "ListenersNotValid")
    assert result.statuses[GW]["attachedListenerSets"] == 0


def test_other_port_joins_the_gateway_service_and_model() -> None:
    result = run(gateway(), listener_set("ls", http("alt", "alt.example.com", port=8080)))
    (svc,) = result.services
    assert [p.port for p in svc.spec.ports] == [80, 8080]
    assert sorted(li.port for li in result.model.listeners) == [80, 8080]


# --- routes ------------------------------------------------------------------------------


def test_route_to_listener_set_attaches_to_its_listeners_only() -> None:
    result = run(
        gateway(),
        listener_set("ls", http("one", "one.example.com") + "\n" + http("two", "two.example.com")),
        route("via-ls", LS_REF),
        route("via-gw", "[{name: gw}]"),
        route(
            "section",
            "[{group: gateway.networking.k8s.io, kind: ListenerSet, name: ls, sectionName: two}]",
        ),
        # a Gateway parentRef does not reach a ListenerSet's listener by sectionName
        route("gw-section", "[{name: gw, sectionName: one}]"),
    )
    status = result.statuses[ls_key("ls")]
    assert listener(status, "one")["attachedRoutes"] == 1
    assert listener(status, "two")["attachedRoutes"] == 2
    assert listener(result.statuses[GW], "web")["attachedRoutes"] == 1
    via_ls = result.statuses[ObjectKey("HTTPRoute", NS, "via-ls")]["parents"]
    assert [p["parentRef"]["kind"] for p in via_ls] == ["ListenerSet"]
    assert cond(via_ls[0], "Accepted") == ("True", "Accepted")
    gw_section = result.statuses[ObjectKey("HTTPRoute", NS, "gw-section")]["parents"]
    assert cond(gw_section[0], "Accepted") == ("False", "NoMatchingParent")
    by_host = {
        vh.hostnames[0]: {r.name for r in vh.routes}
        for li in result.model.listeners
        for vh in li.http
    }
    assert {n.split("/")[2] for n in by_host["one.example.com"]} == {"via-ls"}
    assert {n.split("/")[2] for n in by_host["two.example.com"]} == {"via-ls", "section"}
    assert {n.split("/")[2] for n in by_host["gw.example.com"]} == {"via-gw"}


def test_dual_parent_refs_are_independent() -> None:
    parents = (
        "[{name: gw, sectionName: one},"
        " {group: gateway.networking.k8s.io, kind: ListenerSet, name: ls, sectionName: one}]"
    )
    result = run(gateway(), listener_set("ls", http("one", "one.example.com")), route("r", parents))
    gw_parent, ls_parent = result.statuses[ObjectKey("HTTPRoute", NS, "r")]["parents"]
    assert cond(gw_parent, "Accepted") == ("False", "NoMatchingParent")
    assert cond(ls_parent, "Accepted") == ("True", "Accepted")


def test_allowed_routes_same_is_the_listener_sets_namespace() -> None:
    result = run(
        gateway(),
        listener_set("ls", http("one", "one.example.com"), namespace="team-b"),
        route(
            "home", LS_REF.replace("name: ls", "name: ls, namespace: team-b"), namespace="team-b"
        ),
        route("gw-ns", LS_REF.replace("name: ls", "name: ls, namespace: team-b")),
    )
    assert listener(result.statuses[ls_key("ls", "team-b")], "one")["attachedRoutes"] == 1
    (home,) = result.statuses[ObjectKey("HTTPRoute", "team-b", "home")]["parents"]
    assert cond(home, "Accepted") == ("True", "Accepted")
    (gw_ns,) = result.statuses[ObjectKey("HTTPRoute", NS, "gw-ns")]["parents"]
    assert cond(gw_ns, "Accepted") == ("False", "NotAllowedByListeners")


def test_route_to_listener_set_not_accepted() -> None:
    result = run(
        gateway("None"), listener_set("ls", http("one", "one.example.com")), route("r", LS_REF)
    )
    (parent,) = result.statuses[ObjectKey("HTTPRoute", NS, "r")]["parents"]
    assert cond(parent, "Accepted") == ("False", "NoMatchingParent")
    assert "one.example.com" not in hosts(result)


def test_experimental_x_listener_set() -> None:
    result = run(
        gateway(),
        listener_set(
            "ls",
            http("one", "one.example.com"),
            kind="XListenerSet",
            api="gateway.networking.x-k8s.io/v1alpha1",
        ),
        route("r", "[{group: gateway.networking.x-k8s.io, kind: XListenerSet, name: ls}]"),
        # the v1 kind of the same name is another object
        route("wrong", LS_REF, path="/wrong"),
    )
    status = result.statuses[ls_key("ls", kind="XListenerSet")]
    assert cond(status, "Accepted") == ("True", "Accepted")
    assert listener(status, "one")["attachedRoutes"] == 1
    assert listener(status, "one")["port"] == 80  # required by v1alpha1's status schema
    assert ObjectKey("HTTPRoute", NS, "wrong") not in result.statuses  # not ours


# --- certificates ------------------------------------------------------------------------


def _secret(namespace: str) -> str:
    def b64(s: str) -> str:
        return base64.b64encode(s.encode()).decode()

    cert, key = self_signed(["granted.example.com", "refused.example.com"])
    return f"""
apiVersion: v1
kind: Secret
metadata: {{name: cert, namespace: {namespace}}}
type: kubernetes.io/tls
data: {{tls.crt: {b64(cert)}, tls.key: {b64(key)}}}
"""


def _https(name: str, host: str) -> str:
    return (
        f"  - {{name: {name}, port: 443, protocol: HTTPS, hostname: {host},"
        " tls: {certificateRefs: [{name: cert, namespace: certs}]}}"
    )


def _grant(kind: str, namespace: str) -> str:
    return f"""
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {{name: for-{kind.lower()}-{namespace}, namespace: certs}}
spec:
  from: [{{group: gateway.networking.k8s.io, kind: {kind}, namespace: {namespace}}}]
  to: [{{group: "", kind: Secret}}]
"""


def test_certificate_refs_need_a_grant_for_the_listener_set() -> None:
    docs = (
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: certs}\n",
        _secret("certs"),
        gateway(),
        # a grant to the Gateway does not cover its ListenerSets
        _grant("Gateway", NS),
        listener_set("granted", _https("tls", "granted.example.com")),
        listener_set("refused", _https("tls", "refused.example.com"), namespace="team-b"),
        _grant("ListenerSet", NS),
    )
    result = run(*docs)
    granted = result.statuses[ls_key("granted")]
    assert cond(listener(granted, "tls"), "ResolvedRefs") == ("True", "ResolvedRefs")
    assert cond(granted, "Accepted") == ("True", "Accepted")
    refused = result.statuses[ls_key("refused", "team-b")]
    assert cond(listener(refused, "tls"), "ResolvedRefs") == ("False", "RefNotPermitted")
    assert cond(refused, "Accepted") == ("False", "ListenersNotValid")
    (tls,) = [li for li in result.model.listeners if li.port == 443]
    assert [chain.server_names for chain in tls.https] == [("granted.example.com",)]


# --- the incremental Builder agrees -----------------------------------------------------


def test_builder_follows_listener_set_changes() -> None:
    builder = Builder()
    first = objects(
        gateway(), listener_set("ls", http("one", "one.example.com")), route("r", LS_REF)
    )
    inputs = Inputs(objects=first, default_pool=("127.10.0.0/16",))
    builder.build(inputs)
    second = objects(
        gateway(), listener_set("ls", http("two", "two.example.com")), route("r", LS_REF)
    )
    changed = [ls_key("ls")]
    result = builder.build(Inputs(objects=second, default_pool=("127.10.0.0/16",)), changed)
    fresh = build(Inputs(objects=second, default_pool=("127.10.0.0/16",)))
    assert result.statuses == fresh.statuses
    assert hosts(result) == hosts(fresh) == {"two.example.com"}


def test_a_listener_set_not_accepted_holds_no_port() -> None:
    docs = (
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: certs}\n",
        _secret("certs"),
        gateway(),
        # older, but its only listener may not use the Secret: not accepted
        listener_set(
            "refused", _https("tls", "granted.example.com"), created="2024-01-01T00:00:00Z"
        ),
        _grant("ListenerSet", NS).replace("namespace: infra}]", "namespace: team-b}]"),
        listener_set(
            "newer",
            _https("tls", "granted.example.com"),
            namespace="team-b",
            created="2024-02-01T00:00:00Z",
        ),
    )
    result = run(*docs)
    assert cond(result.statuses[ls_key("refused")], "Accepted") == ("False", "ListenersNotValid")
    newer = result.statuses[ls_key("newer", "team-b")]
    assert cond(newer, "Accepted") == ("True", "Accepted")
    assert cond(listener(newer, "tls"), "Conflicted") == ("False", "NoConflicts")


def test_builder_follows_route_changes_on_listener_sets() -> None:
    """A route change re-counts only the ListenerSets it touches; the result is still
    what a fresh build gives."""
    two = http("one", "one.example.com") + "\n" + http("two", "two.example.com")
    section = "[{group: gateway.networking.k8s.io, kind: ListenerSet, name: ls, sectionName: %s}]"
    steps = [
        (route("r", section % "one"), route("q", LS_REF, path="/q")),
        (route("r", section % "two"), route("q", LS_REF, path="/q")),  # moved
        (route("r", section % "two"),),  # q deleted
        (route("r", "[{name: gw}]"),),  # to the Gateway
    ]
    builder = Builder()
    for i, routes in enumerate(steps):
        objs = objects(gateway(), listener_set("ls", two), listener_set("other", two), *routes)
        inputs = Inputs(objects=objs, default_pool=("127.10.0.0/16",))
        changed = (
            None if i == 0 else [ObjectKey("HTTPRoute", NS, "r"), ObjectKey("HTTPRoute", NS, "q")]
        )
        result = builder.build(inputs, changed)
        fresh = build(inputs)
        assert result.statuses == fresh.statuses, i
    status = result.statuses[ls_key("ls")]
    assert [li["attachedRoutes"] for li in status["listeners"]] == [0, 0]
