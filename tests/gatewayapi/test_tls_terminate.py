"""TLS listeners with `tls.mode: Terminate`: TLSRoutes attach, the Gateway ends TLS with
the listener's certificate and forwards the decrypted stream; mixed with Passthrough
listeners on one port, told apart by SNI."""

from __future__ import annotations

import base64
from typing import Any

import yaml
from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]
from selfsigned_cert import self_signed

from propylon.envoy import translate
from propylon.gatewayapi import Inputs, build
from propylon.model import ProxyOptions
from propylon.resources import parse_object

CRT, KEY = self_signed(["tls.example.com"])


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _build(listeners: str, secret: bool = True) -> Any:
    text = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: cilium}}
spec: {{controllerName: io.cilium/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: ns}}
spec:
  gatewayClassName: cilium
  listeners: {listeners}
---
apiVersion: v1
kind: Service
metadata: {{name: plain, namespace: ns}}
spec: {{ports: [{{name: plain, port: 3000}}, {{name: tls, port: 8443}}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {{name: term, namespace: ns, creationTimestamp: "2024-01-01T00:00:00Z"}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [tls.example.com]
  rules: [{{backendRefs: [{{name: plain, port: 3000}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {{name: pass, namespace: ns, creationTimestamp: "2024-01-02T00:00:00Z"}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [abc.example.com]
  rules: [{{backendRefs: [{{name: plain, port: 8443}}]}}]
"""
    if secret:
        text += f"""---
apiVersion: v1
kind: Secret
metadata: {{name: cert, namespace: ns}}
type: kubernetes.io/tls
data: {{tls.crt: {_b64(CRT)}, tls.key: {_b64(KEY)}}}
"""
    objects = {}
    for doc in yaml.safe_load_all(text):
        obj = parse_object(doc)
        objects[obj.key] = obj
    return build(Inputs(objects=objects, default_pool=("127.10.0.0/16",)))


TERMINATE = """
  - {name: tls-terminate, port: 8883, protocol: TLS, hostname: tls.example.com,
     tls: {mode: Terminate, certificateRefs: [{name: cert}]}}
"""
MIXED = (
    TERMINATE
    + """
  - {name: tls-passthrough, port: 8883, protocol: TLS, hostname: abc.example.com,
     tls: {mode: Passthrough}}
"""
)


def _conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def _gateway(result: Any) -> dict[str, Any]:
    return next(s for k, s in result.statuses.items() if k.kind == "Gateway")


def test_terminate_listener_is_accepted_with_tlsroute_kind_and_programmed() -> None:
    result = _build(TERMINATE)
    gw = _gateway(result)
    assert _conditions(gw)["Accepted"] == ("True", "Accepted")
    (listener,) = gw["listeners"]
    assert listener["supportedKinds"] == [
        {"group": "gateway.networking.k8s.io", "kind": "TLSRoute"}
    ]
    assert _conditions(listener)["Accepted"] == ("True", "Accepted")
    assert _conditions(listener)["Programmed"] == ("True", "Programmed")
    assert listener["attachedRoutes"] == 1
    (model_listener,) = result.model.listeners
    (chain,) = model_listener.passthrough
    assert chain.server_names == ("tls.example.com",)
    assert chain.certificates == ("ns/cert",)
    assert [s.name for s in result.model.secrets] == ["ns/cert"]


def test_terminate_listener_without_certificate_is_not_programmed() -> None:
    result = _build(TERMINATE, secret=False)
    (listener,) = _gateway(result)["listeners"]
    assert _conditions(listener)["ResolvedRefs"] == ("False", "InvalidCertificateRef")
    assert _conditions(listener)["Programmed"][0] == "False"
    assert result.model.listeners == ()


def test_mixed_modes_share_a_port_by_sni_and_envoy_ends_tls_only_for_terminate() -> None:
    result = _build(MIXED)
    gw = _gateway(result)
    assert _conditions(gw)["Accepted"] == ("True", "Accepted")
    for listener in gw["listeners"]:
        assert _conditions(listener)["Accepted"] == ("True", "Accepted")
        assert _conditions(listener)["Conflicted"][0] == "False"
        assert listener["attachedRoutes"] == 1
    (model_listener,) = result.model.listeners
    chains = {c.server_names: c.certificates for c in model_listener.passthrough}
    assert chains == {("tls.example.com",): ("ns/cert",), ("abc.example.com",): ()}

    out = translate(result.model, ProxyOptions())
    (envoy_listener,) = out.listeners.values()
    by_name = {c["name"]: c for c in MessageToDict(envoy_listener)["filterChains"]}
    term = by_name["ns/gw/8883/terminate/ns/gw/8883/tls.example.com"]
    assert term["filterChainMatch"]["serverNames"] == ["tls.example.com"]
    context = term["transportSocket"]["typedConfig"]["commonTlsContext"]
    assert [s["name"] for s in context["tlsCertificateSdsSecretConfigs"]] == ["ns/cert"]
    assert "alpnProtocols" not in context  # an opaque stream: no HTTP offered
    assert term["filters"][-1]["name"] == "envoy.filters.network.tcp_proxy"
    passthrough = by_name["ns/gw/8883/passthrough/ns/gw/8883/abc.example.com"]
    assert "transportSocket" not in passthrough
    assert list(out.secrets) == ["ns/cert"]
