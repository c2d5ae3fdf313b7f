"""Gateway/GatewayClass status and core HTTPRoute attachment tests (v1.4.1).

Transcribed from conformance/tests/*.go (expectations only). Patches upstream makes with the
Kubernetes client are edits of the watched manifest file here (``_edit``); status is read
from the running instance's API.
"""

from __future__ import annotations

import copy
import hashlib
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Any

from . import checks
from .client import await_convergence, compare, request
from .harness import CONTROLLER, Cluster, Failure, load_documents, suite_file
from .runner import conformance
from .suites import INFRA, SAME, E, expect_all, routes_ready

Doc = dict[str, Any]
HTTPROUTE_KIND = [("gateway.networking.k8s.io", "HTTPRoute")]
NN = tuple[str, str]


# --- helpers ----------


def _edit(c: Cluster, manifest: str, change: Callable[[list[Doc]], None]) -> None:
    """Patch objects of an applied manifest: rewrite its watched file (kubectl apply)."""
    name = manifest.removesuffix(".yaml")
    # generated EndpointSlices are derived again from the Services by Cluster.apply
    docs = [
        copy.deepcopy(d)
        for d in c.applied(name)
        if not (d.get("kind") == "EndpointSlice" and d["metadata"]["name"].endswith("-local"))
    ]
    change(docs)
    c.apply(name, docs)


def _find(docs: list[Doc], kind: str, name: str) -> Doc:
    for doc in docs:
        if doc.get("kind") == kind and doc["metadata"]["name"] == name:
            return doc
    raise Failure(f"{kind} {name} not in the manifest")


def _generation(obj: Doc) -> int:
    return int(obj["metadata"].get("generation", 0))


def _latest_now(c: Cluster, kind: str, nn: tuple[str | None, str], parents: bool = False) -> Doc:
    """The object, failing at once if a condition is stale (*MustHaveLatestConditions on a Get)."""
    obj = c.must_get(kind, *nn)
    status = obj.get("status", {})
    conds: list[Doc] = []
    if parents:
        for parent in status.get("parents") or []:
            conds += parent.get("conditions", [])
    else:
        conds = list(status.get("conditions", []))
    stale = checks.latest_generation(obj, conds)
    if stale:
        raise Failure(f"{kind} {nn}: {stale}")
    return obj


def _gateway_latest(c: Cluster, gw: NN) -> None:
    """GatewayMustHaveLatestConditions: Gateway conditions at the latest observedGeneration."""

    def ok() -> bool | str:
        obj = c.get("Gateway", *gw)
        if obj is None:
            return False
        conds = obj.get("status", {}).get("conditions", [])
        return checks.latest_generation(obj, conds) or bool(conds) or "no conditions"

    checks._wait_true(ok, f"Gateway {gw} conditions at the latest observedGeneration")


def _gateway_condition(c: Cluster, gw: NN, type_: str, status: str, reason: str = "") -> None:
    """GatewayMustHaveCondition: latest observedGeneration and the condition."""

    def ok() -> bool | str:
        obj = c.get("Gateway", *gw)
        if obj is None:
            return False
        conds = obj.get("status", {}).get("conditions", [])
        stale = checks.latest_generation(obj, conds)
        if stale:
            return stale
        return checks.condition_matches(conds, type_, status, reason) or f"{conds}"

    checks._wait_true(ok, f"Gateway {gw} {type_}={status} ({reason})")


def _listener(
    name: str, attached: int, conditions: Sequence[tuple[str, str, str]], kinds: Any = None
) -> checks.ListenerSpec:
    return {
        "name": name,
        "supportedKinds": HTTPROUTE_KIND if kinds is None else kinds,
        "attachedRoutes": attached,
        "conditions": list(conditions),
    }


_READY = [("Accepted", "True", ""), ("ResolvedRefs", "True", "")]


def _no_accepted_parents(c: Cluster, route: NN) -> None:
    """HTTPRouteMustHaveNoAcceptedParents: none, or one parent Accepted=False (latest gen)."""
    seen_empty = [False]

    def ok() -> bool | str:
        obj = c.get("HTTPRoute", *route)
        if obj is None:
            return False
        parents = obj.get("status", {}).get("parents") or []
        if not parents:
            if not seen_empty[0]:
                seen_empty[0] = True
                return "no parents yet"
            return True
        if len(parents) > 1:
            return f"more than one parent: {parents}"
        conds = parents[0].get("conditions", [])
        stale = checks.latest_generation(obj, conds)
        if stale:
            return stale
        return checks.condition_matches(conds, "Accepted", "False") or f"{parents}"

    checks._wait_true(ok, f"HTTPRoute {route} has no accepted parents")


def _zero_routes(c: Cluster, gw: NN) -> None:
    """GatewayMustHaveZeroRoutes: no listeners in status, or exactly one with 0 routes."""

    def ok() -> bool | str:
        obj = c.get("Gateway", *gw)
        if obj is None:
            return False
        stale = checks.latest_generation(obj, obj.get("status", {}).get("conditions", []))
        if stale:
            return stale
        listeners = obj.get("status", {}).get("listeners") or []
        if not listeners or (len(listeners) == 1 and listeners[0].get("attachedRoutes") == 0):
            return True
        return f"{listeners}"

    checks._wait_true(ok, f"Gateway {gw} has zero attached routes")


# --- GatewayClass / Gateway status ----------


@conformance(
    "GatewayClassObservedGenerationBump", [], ["gatewayclass-observed-generation-bump.yaml"]
)
def gatewayclass_observed_generation_bump(c: Cluster) -> None:
    name = "gatewayclass-observed-generation-bump"

    def accepted_any() -> bool | str:
        obj = c.get("GatewayClass", None, name)
        if obj is None:
            return False
        conds = obj.get("status", {}).get("conditions", [])
        stale = checks.latest_generation(obj, conds)
        if stale:
            return stale
        return checks.find_condition(conds, "Accepted") is not None or f"{conds}"

    checks._wait_true(accepted_any, f"GatewayClass {name} has an Accepted condition")
    original = _latest_now(c, "GatewayClass", (None, name))

    def describe(docs: list[Doc]) -> None:
        _find(docs, "GatewayClass", name)["spec"]["description"] = "new"

    _edit(c, "gatewayclass-observed-generation-bump", describe)

    def bumped() -> bool | str:
        obj = c.get("GatewayClass", None, name)
        if obj is None or _generation(obj) == _generation(original):
            return "generation not changed yet"
        return accepted_any()

    checks._wait_true(bumped, f"GatewayClass {name} Accepted at the new generation")
    updated = _latest_now(c, "GatewayClass", (None, name))
    if _generation(updated) == _generation(original):
        raise Failure("generation should change after an update")


@conformance("GatewayInvalidRouteKind", [], ["gateway-invalid-route-kind.yaml"])
def gateway_invalid_route_kind(c: Cluster) -> None:
    invalid = [("ResolvedRefs", "False", "InvalidRouteKinds")]
    checks.gateway_listeners(
        c, (INFRA, "gateway-only-invalid-route-kind"), [_listener("http", 0, invalid, kinds=[])]
    )
    checks.gateway_listeners(
        c, (INFRA, "gateway-supported-and-invalid-route-kind"), [_listener("http", 0, invalid)]
    )


@conformance(
    "GatewayInvalidTLSConfiguration", [], ["gateway-invalid-tls-configuration.yaml"], fast=True
)
def gateway_invalid_tls_configuration(c: Cluster) -> None:
    expected = [_listener("https", 0, [("ResolvedRefs", "False", "InvalidCertificateRef")])]
    for gw in (
        "gateway-certificate-nonexistent-secret",
        "gateway-certificate-unsupported-group",
        "gateway-certificate-unsupported-kind",
        "gateway-certificate-malformed-secret",
    ):
        checks.gateway_listeners(c, (INFRA, gw), expected)


@conformance("GatewayModifyListeners", [], ["gateway-modify-listeners.yaml"])
def gateway_modify_listeners(c: Cluster) -> None:
    manifest = "gateway-modify-listeners"

    # add a listener
    gw = (INFRA, "gateway-add-listener")
    _gateway_latest(c, gw)
    original = c.must_get("Gateway", *gw)

    def add(docs: list[Doc]) -> None:
        _find(docs, "Gateway", gw[1])["spec"]["listeners"].append(
            {
                "name": "http",
                "port": 80,
                "protocol": "HTTP",
                "hostname": "data.test.com",
                "allowedRoutes": {"namespaces": {"from": "All"}},
            }
        )

    _edit(c, manifest, add)
    checks.gateway_listeners(c, gw, [_listener("https", 1, _READY), _listener("http", 1, _READY)])
    _gateway_latest(c, gw)
    if _generation(c.must_get("Gateway", *gw)) == _generation(original):
        raise Failure("generation should change after an update")

    # remove a listener
    gw = (INFRA, "gateway-remove-listener")
    _gateway_latest(c, gw)
    original = c.must_get("Gateway", *gw)
    if len(original["spec"]["listeners"]) != 2:
        raise Failure("the gateway must have 2 listeners")

    def remove(docs: list[Doc]) -> None:
        spec = _find(docs, "Gateway", gw[1])["spec"]
        spec["listeners"] = [ls for ls in spec["listeners"] if ls["name"] == "http"]

    _edit(c, manifest, remove)
    checks.gateway_listeners(c, gw, [_listener("http", 1, _READY)])
    _gateway_latest(c, gw)
    if _generation(c.must_get("Gateway", *gw)) == _generation(original):
        raise Failure("generation should change after an update")


@conformance(
    "GatewayObservedGenerationBump", [], ["gateway-observed-generation-bump.yaml"], fast=True
)
def gateway_observed_generation_bump(c: Cluster) -> None:
    gw = (INFRA, "gateway-observed-generation-bump")
    _gateway_latest(c, gw)
    original = c.must_get("Gateway", *gw)

    def add(docs: list[Doc]) -> None:
        _find(docs, "Gateway", gw[1])["spec"]["listeners"].append(
            {
                "name": "alternate",
                "hostname": "foo.com",
                "port": 80,
                "protocol": "HTTP",
                "allowedRoutes": {"namespaces": {"from": "All"}},
            }
        )

    _edit(c, "gateway-observed-generation-bump", add)

    def bumped() -> bool | str:
        obj = c.get("Gateway", *gw)
        if obj is None or _generation(obj) == _generation(original):
            return "generation not changed yet"
        conds = obj.get("status", {}).get("conditions", [])
        return checks.latest_generation(obj, conds) or True

    checks._wait_true(bumped, f"Gateway {gw} conditions at the new generation")


@conformance("GatewayWithAttachedRoutes", ["HTTPRoute"], ["gateway-with-attached-routes.yaml"])
def gateway_with_attached_routes(c: Cluster) -> None:
    checks.gateway_listeners(
        c, (INFRA, "gateway-with-one-attached-route"), [_listener("http", 1, _READY)]
    )
    checks.gateway_listeners(
        c, (INFRA, "gateway-with-two-attached-routes"), [_listener("http", 2, _READY)]
    )
    gw = (INFRA, "unresolved-gateway-with-one-attached-unresolved-route")
    unresolved = [("Programmed", "False", ""), ("ResolvedRefs", "False", "")]
    checks.gateway_listeners(c, gw, [_listener("tls", 1, unresolved)])
    checks.route_condition(c, (INFRA, "http-route-4"), gw, "ResolvedRefs", "False", "")


@conformance(
    "GatewayWithAttachedRoutesWithPort8080",
    ["HTTPRoute", "GatewayPort8080"],
    ["gateway-with-attached-routes-with-port-8080.yaml"],
)
def gateway_with_attached_routes_8080(c: Cluster) -> None:
    checks.gateway_listeners(
        c,
        (INFRA, "gateway-with-two-listeners-and-one-attached-route"),
        [_listener("http-unattached", 0, _READY), _listener("http", 1, _READY)],
    )


def _static_addresses(docs: list[Doc], usable: str, unusable: str) -> list[Doc]:
    """The suite's address overlay (utils/kubernetes/apply.go): placeholders -> addresses."""
    out = copy.deepcopy(docs)
    for doc in out:
        if doc.get("kind") != "Gateway":
            continue
        addrs = doc.get("spec", {}).get("addresses") or []
        values = {a.get("value") for a in addrs}
        if not values & {"PLACEHOLDER_USABLE_ADDRS", "PLACEHOLDER_UNUSABLE_ADDRS"}:
            continue
        overlay = [a for a in addrs if a.get("type") == "test/fake-invalid-type"]
        if "PLACEHOLDER_UNUSABLE_ADDRS" in values:
            overlay.append({"type": "IPAddress", "value": unusable})
        if "PLACEHOLDER_USABLE_ADDRS" in values:
            overlay.append({"type": "IPAddress", "value": usable})
        doc["spec"]["addresses"] = overlay
    return out


def usable_address(c: Cluster) -> str:
    """An address of this host Propylon may use: one from the run's pool, high in the range."""
    base = c.pool.split("/")[0].rsplit(".", 1)[0]
    return f"{base}.250"


# TEST-NET-3 (RFC 5737): never assigned to this host, so it cannot be bound.
UNUSABLE_ADDRESS = "203.0.113.77"


@conformance(
    "GatewayStaticAddresses",
    ["GatewayStaticAddresses"],
)
def gateway_static_addresses(c: Cluster) -> None:
    manifest = "gateway-static-addresses"
    usable = usable_address(c)
    c.apply(
        manifest,
        _static_addresses(load_documents(suite_file(f"{manifest}.yaml")), usable, UNUSABLE_ADDRESS),
    )
    gw = (INFRA, "gateway-static-addresses")
    _gateway_latest(c, gw)
    current = c.must_get("Gateway", *gw)
    addrs = current["spec"].get("addresses") or []
    if len(addrs) != 3:
        raise Failure(f"expected 3 addresses on the Gateway, got {len(addrs)}")
    invalid, unusable, usable_spec = addrs
    _gateway_condition(c, gw, "Accepted", "False", "UnsupportedAddress")

    def drop(value: str) -> Callable[[list[Doc]], None]:
        def change(docs: list[Doc]) -> None:
            spec = _find(docs, "Gateway", gw[1])["spec"]
            spec["addresses"] = [a for a in spec["addresses"] if a.get("value") != value]

        return change

    _edit(c, manifest, drop(invalid["value"]))
    _wait_generation_above(c, gw, _generation(current))
    _gateway_latest(c, gw)
    _gateway_condition(c, gw, "Accepted", "True", "Accepted")
    _gateway_condition(c, gw, "Programmed", "False", "AddressNotUsable")
    current = c.must_get("Gateway", *gw)

    _edit(c, manifest, drop(unusable["value"]))
    _wait_generation_above(c, gw, _generation(current))
    _gateway_latest(c, gw)
    _gateway_condition(c, gw, "Accepted", "True", "Accepted")
    _gateway_condition(c, gw, "Programmed", "True", "Programmed")
    checks.gateway_listeners(c, gw, [_listener("http", 0, _READY)])
    current = c.must_get("Gateway", *gw)
    if len(current["spec"].get("addresses") or []) != 1:
        raise Failure("expected only 1 address left specified on Gateway")
    status = current.get("status", {}).get("addresses") or []
    values = [a.get("value") for a in status]
    if unusable["value"] in values or invalid["value"] in values:
        raise Failure(f"status addresses {values} contain a removed address")
    if usable_spec["value"] not in values:
        raise Failure(f"status addresses {values} should contain {usable_spec['value']}")
    for addr in status:
        if addr.get("value") == usable_spec["value"] and addr.get("type") != usable_spec["type"]:
            raise Failure(f"address type {addr.get('type')} != {usable_spec['type']}")


def _wait_generation_above(c: Cluster, nn: NN, generation: int) -> None:
    def ok() -> bool:
        obj = c.get("Gateway", *nn)
        return obj is not None and _generation(obj) > generation

    checks._wait_true(ok, f"Gateway {nn} generation above {generation}")


@conformance(
    "GatewayOptionalAddressValue",
    ["GatewayAddressEmpty"],
    ["gateway-optional-address-value.yaml"],
    provisional=True,
)
def gateway_optional_address_value(c: Cluster) -> None:
    gw = (INFRA, "gateway-without-address-value")
    _gateway_latest(c, gw)
    c.must_get("Gateway", *gw)
    checks.gateway_address(c, gw, "http")


@conformance(
    "GatewayInfrastructure",
    ["GatewayInfrastructurePropagation"],
    ["gateway-infrastructure.yaml"],
    provisional=True,
)
def gateway_infrastructure(c: Cluster) -> None:
    raise Failure("not run: see runner.EXCEPTIONS")  # pragma: no cover


# --- HTTPRoute ----------


@conformance(
    "HTTPRouteHostnameIntersection", ["HTTPRoute"], ["httproute-hostname-intersection.yaml"]
)
def hostname_intersection(c: Cluster) -> None:
    gw = (INFRA, "httproute-hostname-intersection")
    routes = [
        (INFRA, "specific-host-matches-listener-specific-host"),
        (INFRA, "specific-host-matches-listener-wildcard-host"),
        (INFRA, "wildcard-host-matches-listener-specific-host"),
        (INFRA, "wildcard-host-matches-listener-wildcard-host"),
    ]
    addr = routes_ready(c, gw, routes)
    v1, v2, v3 = "infra-backend-v1", "infra-backend-v2", "infra-backend-v3"
    nf = 404
    cases = [
        E("/s1", v1, host="very.specific.com"),
        E("/s1", v1, host="very.specific.com:1234"),
        E("/s1", host="non.matching.com", status=nf),
        E("/s1", host="foo.nonmatchingwildcard.io", status=nf),
        E("/s1", host="foo.wildcard.io", status=nf),
        E("/non-matching-prefix", host="very.specific.com", status=nf),
        E("/s2", v2, host="foo.wildcard.io"),
        E("/s2", v2, host="bar.wildcard.io"),
        E("/s2", v2, host="foo.bar.wildcard.io"),
        E("/s2", host="non.matching.com", status=nf),
        E("/s2", host="wildcard.io", status=nf),
        E("/s2", host="very.specific.com", status=nf),
        E("/non-matching-prefix", host="foo.wildcard.io", status=nf),
        E("/s3", v3, host="very.specific.com"),
        E("/s3", host="non.matching.com", status=nf),
        E("/s3", host="foo.specific.com", status=nf),
        E("/s3", host="foo.wildcard.io", status=nf),
        E("/non-matching-prefix", host="very.specific.com", status=nf),
        E("/s4", v1, host="foo.anotherwildcard.io"),
        E("/s4", v1, host="bar.anotherwildcard.io"),
        E("/s4", v1, host="foo.bar.anotherwildcard.io"),
        E("/s4", host="anotherwildcard.io", status=nf),
        E("/s4", host="foo.wildcard.io", status=nf),
        E("/s4", host="very.specific.com", status=nf),
        E("/non-matching-prefix", host="foo.anotherwildcard.io", status=nf),
    ]
    expect_all(addr, cases)

    # routes that do not intersect with the listener hostnames
    addr = checks.gateway_and_routes_accepted(c, gw, [])
    route = (INFRA, "no-intersecting-hosts")

    def not_accepted() -> bool | str:
        obj = c.get("HTTPRoute", *route)
        if obj is None:
            return False
        parents = obj.get("status", {}).get("parents") or []
        if len(parents) != 1:
            return f"expected 1 parent, got {parents}"
        parent = parents[0]
        ref = parent.get("parentRef", {})
        if parent.get("controllerName") != CONTROLLER:
            return f"controllerName {parent.get('controllerName')}"
        want = {"group": checks.GW_GROUP, "kind": "Gateway", "namespace": gw[0], "name": gw[1]}
        if any(ref.get(k) != v for k, v in want.items()):
            return f"parentRef {ref}"
        conds = parent.get("conditions", [])
        return (
            checks.conditions_match(conds, [("Accepted", "False", "NoMatchingListenerHostname")])
            or f"{conds}"
        )

    checks._wait_true(not_accepted, f"HTTPRoute {route} NoMatchingListenerHostname")
    expect_all(
        addr,
        [
            E("/s5", host="specific.but.wrong.com", status=nf),
            E("/s5", host="wildcard.io", status=nf),
        ],
    )

    # a listener without hostname
    gw = (INFRA, "httproute-hostname-intersection-all")
    addr = routes_ready(c, gw, [(INFRA, "httproute-hostname-intersection-all")])
    expect_all(
        addr,
        [
            E("/", v2, host="first.com"),
            E("/", v2, host="sub.first.com"),
            E("/", v2, host="second.com"),
            E("/", v2, host="sub.second.com"),
            E("/", host="third.com", status=nf, ns=INFRA),
            E("/", host="sub.third.com", status=nf, ns=INFRA),
        ],
    )


def _tls_peer_certificate(addr: str, sni: str) -> bytes:
    host, _, port = addr.rpartition(":")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((host, int(port)), timeout=10) as sock,
        ctx.wrap_socket(sock, server_hostname=sni) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if der is None:
        raise Failure("no peer certificate")
    return der


@conformance("HTTPRouteHTTPSListener", ["HTTPRoute"], ["httproute-https-listener.yaml"])
def https_listener(c: Cluster) -> None:
    gw = (INFRA, "same-namespace-with-https-listener")
    route, no_host = (INFRA, "httproute-https-test"), (INFRA, "httproute-https-test-no-hostname")
    addr = routes_ready(c, gw, [route, no_host])
    assert c.certs is not None
    cert_pem, _key = c.certs.pem[(INFRA, "tls-validity-checks-certificate")]
    want = hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert_pem.decode())).hexdigest()
    cases = [
        ("example.org", 200, "infra-backend-v1"),
        ("unknown-example.org", 404, ""),
        ("second-example.org", 200, "infra-backend-v2"),
    ]
    for host, status, backend in cases:
        e = E("/", backend, host=host, status=status, ns=INFRA)

        def check(e: Any = e, host: str = host) -> str | None:
            got = hashlib.sha256(_tls_peer_certificate(addr, host)).hexdigest()
            if got != want:
                return f"{host}: served a certificate other than tls-validity-checks-certificate"
            return compare(addr, "https", e, request(addr, e, scheme="https"))

        await_convergence(check, what=f"https {host} -> {backend or status}")


@conformance(
    "HTTPRouteObservedGenerationBump", ["HTTPRoute"], ["httproute-observed-generation-bump.yaml"]
)
def httproute_observed_generation_bump(c: Cluster) -> None:
    route = (INFRA, "observed-generation-bump")
    checks.route_condition(c, route, SAME, "Accepted", "True", "")
    original = _latest_now(c, "HTTPRoute", route, parents=True)

    def rename(docs: list[Doc]) -> None:
        rule = _find(docs, "HTTPRoute", route[1])["spec"]["rules"][0]
        rule["backendRefs"][0]["name"] = "infra-backend-v2"

    _edit(c, "httproute-observed-generation-bump", rename)

    def bumped() -> bool:
        obj = c.get("HTTPRoute", *route)
        return obj is not None and _generation(obj) != _generation(original)

    checks._wait_true(bumped, f"HTTPRoute {route} generation bumped")
    checks.route_condition(c, route, SAME, "Accepted", "True", "")
    checks.route_resolved_refs_true(c, route, SAME)
    updated = _latest_now(c, "HTTPRoute", route, parents=True)
    if _generation(updated) == _generation(original):
        raise Failure("generation should change after an update")


@conformance("HTTPRouteServiceTypes", ["HTTPRoute"], ["httproute-service-types.yaml"])
def service_types(c: Cluster) -> None:
    route = (INFRA, "service-types")
    addr = routes_ready(c, SAME, [route])
    pods = c.backends.pods_of(INFRA, "infra-backend-v1")
    if not pods:
        raise Failure("expected 'infra-backend-v1' to have running Pods")

    def fill(docs: list[Doc]) -> None:
        # setupEndpointSlices: the manual slices get infra-backend-v1's Pod IPs (IPv4 only here)
        for prefix in ("manual-endpointslices", "headless-manual-endpointslices"):
            for family in ("ip4", "ip6"):
                eps = _find(docs, "EndpointSlice", f"{prefix}-{family}")
                endpoints = [
                    {
                        "addresses": [p.ip],
                        "conditions": {"ready": True, "serving": True, "terminating": False},
                        "targetRef": {"kind": "Pod", "name": p.name, "namespace": p.namespace},
                    }
                    for p in pods
                    if (":" in p.ip) == (family == "ip6")
                ]
                if endpoints:
                    eps["endpoints"] = endpoints

    _edit(c, "httproute-service-types", fill)
    expect_all(
        addr,
        [
            E(f"/{path}", "infra-backend-v1")
            for path in ("manual-endpointslices", "headless-manual-endpointslices", "headless")
        ],
    )


@conformance(
    "HTTPRouteDisallowedKind", ["HTTPRoute", "TLSRoute"], ["httproute-disallowed-kind.yaml"]
)
def disallowed_kind(c: Cluster) -> None:
    route, gw = (INFRA, "disallowed-kind"), (INFRA, "tlsroutes-only")
    checks.route_resolved_refs_true(c, route, gw)
    checks.route_condition(c, route, gw, "Accepted", "False", "NotAllowedByListeners")
    _no_accepted_parents(c, route)
    _zero_routes(c, gw)


@conformance(
    "HTTPRouteInvalidParentRefNotMatchingListenerPort",
    ["HTTPRoute", "HTTPRouteDestinationPortMatching"],
    ["httproute-invalid-parentref-not-matching-listener-port.yaml"],
)
def invalid_parentref_listener_port(c: Cluster) -> None:
    route = (INFRA, "httproute-listener-not-matching-route-port")
    checks.route_resolved_refs_true(c, route, SAME)
    checks.route_condition(c, route, SAME, "Accepted", "False", "NoMatchingParent")
    _no_accepted_parents(c, route)
    _zero_routes(c, SAME)


@conformance(
    "HTTPRouteInvalidParentRefSectionNameNotMatchingPort",
    ["HTTPRoute", "HTTPRouteParentRefPort"],
    ["httproute-invalid-parentref-section-name-not-matching-port.yaml"],
)
def invalid_parentref_section_name_port(c: Cluster) -> None:
    route = (INFRA, "httproute-listener-section-name-not-matching-port")
    gw = (INFRA, "gateway-with-one-not-matching-port-and-section-name-route")
    checks.route_condition(c, route, gw, "Accepted", "False", "NoMatchingParent")
    _no_accepted_parents(c, route)
    _zero_routes(c, gw)


@conformance(
    "HTTPRouteListenerPortMatching",
    ["HTTPRoute", "HTTPRouteParentRefPort"],
    ["httproute-listener-port-matching.yaml"],
)
def listener_port_matching(c: Cluster) -> None:
    gw = (INFRA, "httproute-listener-port-matching")
    addr80 = routes_ready(c, gw, [(INFRA, "backend-v1")], listeners=["listener-1"])
    addr8080 = routes_ready(c, gw, [(INFRA, "backend-v2")], listeners=["listener-2"])
    addr8090 = routes_ready(c, gw, [(INFRA, "backend-v3")], listeners=["listener-4"])
    by_port = {"8080": addr8080, "8090": addr8090}
    cases = [
        E("/", "infra-backend-v1", host="foo.com"),
        E("/", "infra-backend-v2", host="foo.com:8080"),
        E("/", "infra-backend-v2", host="bar.com:8080"),
        E("/", "infra-backend-v3", host="foo.com:8090"),
        E("/", host="bar.com:8090", status=404),
    ]
    for case in cases:
        port = case.host.partition(":")[2]
        expect_all(by_port.get(port, addr80), [case])
