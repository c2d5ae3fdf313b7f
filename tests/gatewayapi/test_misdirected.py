"""HTTPS listeners sharing a port: on the filter chain SNI chose, a request for another
listener's hostname answers 421; the listener's own hosts without a route 404. The
listeners of the upstream conformance test (one without hostname, an exact one, a
wildcard and an exact one under that wildcard)."""

from __future__ import annotations

import base64
from typing import Any

import yaml
from selfsigned_cert import self_signed

from propylon.gatewayapi import Inputs, build
from propylon.model import DirectResponse, Forward, Listener
from propylon.resources import parse_object

CRT, KEY = self_signed(["example.org"])
LISTENERS = {
    "https": None,
    "https-with-hostname": "second-example.org",
    "https-with-wildcard-hostname": "*.wildcard.org",
    "https-with-hostname-matching-wildcard": "fourth-example.wildcard.org",
}


def _model_listener(without_route: str = "") -> Listener:
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "cilium"},
            "spec": {"controllerName": "io.cilium/gateway-controller"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "cert", "namespace": "ns"},
            "type": "kubernetes.io/tls",
            "data": {
                "tls.crt": base64.b64encode(CRT.encode()).decode(),
                "tls.key": base64.b64encode(KEY.encode()).decode(),
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "svc", "namespace": "ns"},
            "spec": {"ports": [{"port": 8080}]},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "ns"},
            "spec": {
                "gatewayClassName": "cilium",
                "listeners": [
                    {
                        "name": name,
                        "port": 443,
                        "protocol": "HTTPS",
                        **({"hostname": host} if host else {}),
                        "tls": {"certificateRefs": [{"name": "cert"}]},
                    }
                    for name, host in LISTENERS.items()
                ],
            },
        },
    ]
    for name in LISTENERS:
        if name == without_route:
            continue
        docs.append(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": name, "namespace": "ns"},
                "spec": {
                    "parentRefs": [{"name": "gw", "sectionName": name}],
                    **({"hostnames": ["example.org"]} if name == "https" else {}),
                    "rules": [{"backendRefs": [{"name": "svc", "port": 8080}]}],
                },
            }
        )
    objects = {(o := parse_object(yaml.safe_load(yaml.safe_dump(d)))).key: o for d in docs}
    (listener,) = build(Inputs(objects=objects, default_pool=("127.10.0.0/16",))).model.listeners
    return listener


def _answers(listener: Listener) -> dict[str, dict[str, str]]:
    """SNI (or * for the chain without server names) -> host -> route / 421 / 404."""
    out: dict[str, dict[str, str]] = {}
    for chain in listener.https:
        hosts: dict[str, str] = {}
        for vh in chain.virtual_hosts:
            (host,) = vh.hostnames
            if not vh.routes:
                hosts[host] = "404"
                continue
            action = vh.routes[0].action
            if isinstance(action, DirectResponse):
                hosts[host] = str(action.status)
            else:
                assert isinstance(action, Forward)
                hosts[host] = "route"
        out[chain.server_names[0] if chain.server_names else "*"] = hosts
    return out


def test_each_chain_answers_421_for_its_peers_hosts() -> None:
    assert _answers(_model_listener()) == {
        # No hostname: the other listeners' names are theirs; anything else is a 404 of
        # its own (no virtual host: Envoy's 404).
        "*": {
            "example.org": "route",
            "second-example.org": "421",
            "*.wildcard.org": "421",
            "fourth-example.wildcard.org": "421",
        },
        "second-example.org": {
            "second-example.org": "route",
            "*.wildcard.org": "421",
            "fourth-example.wildcard.org": "421",
            "*": "421",  # the listener without hostname's
        },
        # The wildcard: its own hosts win over `*` (more specific), its more specific
        # peer's host is that peer's.
        "*.wildcard.org": {
            "*.wildcard.org": "route",
            "second-example.org": "421",
            "fourth-example.wildcard.org": "421",
            "*": "421",
        },
        "fourth-example.wildcard.org": {
            "fourth-example.wildcard.org": "route",
            "second-example.org": "421",
            "*.wildcard.org": "421",
            "*": "421",
        },
    }


def test_own_wildcard_hosts_without_a_route_are_404_not_a_peers_421() -> None:
    answers = _answers(_model_listener(without_route="https-with-wildcard-hostname"))
    # Without it, `*` (421) would take x.wildcard.org on the wildcard listener's chain.
    assert answers["*.wildcard.org"]["*.wildcard.org"] == "404"
    assert answers["*.wildcard.org"]["*"] == "421"
