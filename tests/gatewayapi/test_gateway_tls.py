"""Gateway spec.tls: frontend client certificate validation (listener and Gateway
conditions, the model's ClientValidation, Envoy's DownstreamTlsContext) and the backend
client certificate (Gateway ResolvedRefs, per-Gateway copies of TLS clusters, Envoy's
UpstreamTlsContext)."""

from __future__ import annotations

import base64
import json
from typing import Any

import yaml
from google.protobuf.json_format import MessageToDict
from selfsigned_cert import self_signed

from propylon.envoy import Translator, translate
from propylon.gatewayapi import Builder, Inputs, build
from propylon.model import Forward, ProxyOptions
from propylon.resources import ObjectKey, Resource, parse_object

CERT, KEY = self_signed(["example.org"])
CA, _ = self_signed(["client-ca"])
B64 = {k: base64.b64encode(v.encode()).decode() for k, v in (("crt", CERT), ("key", KEY))}

BASE = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: cilium}}
spec: {{controllerName: io.cilium/gateway-controller}}
---
apiVersion: v1
kind: Secret
metadata: {{name: cert}}
type: kubernetes.io/tls
data: {{tls.crt: {B64["crt"]}, tls.key: {B64["key"]}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: ca}}
data:
  ca.crt: {json.dumps(CA)}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: ca, namespace: other}}
data:
  ca.crt: {json.dumps(CA)}
"""

HTTPS = """
  - name: {name}
    port: {port}
    protocol: HTTPS
    hostname: {name}.example.org
    tls: {{certificateRefs: [{{name: cert}}]}}"""


def gateway(tls: str, listeners: str) -> str:
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw}}
spec:
  gatewayClassName: cilium
  tls: {tls}
  listeners:{listeners}
"""


def run(text: str) -> Any:
    out: dict[ObjectKey, Resource] = {}
    for doc in yaml.safe_load_all(BASE + "---\n" + text):
        if doc:
            obj = parse_object(doc)
            out[obj.key] = obj
    return build(Inputs(objects=out, default_pool=("127.10.0.0/16",)))


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def listener_conditions(result: Any, name: str) -> dict[str, tuple[str, str]]:
    status = result.statuses[ObjectKey("Gateway", "default", "gw")]
    return conditions(next(li for li in status["listeners"] if li["name"] == name))


def gateway_conditions(result: Any) -> dict[str, tuple[str, str]]:
    return conditions(result.statuses[ObjectKey("Gateway", "default", "gw")])


FRONTEND = """
    frontend:
      default:
        validation:
          caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}]
      perPort:
      - port: 7443
        tls: {validation: {caCertificateRefs: [{group: "", kind: ConfigMap, name: missing}]}}
      - port: 8443
        tls: {validation: {caCertificateRefs: [{group: "", kind: Service, name: ca}]}}
      - port: 6443
        tls:
          validation:
            caCertificateRefs: [{group: "", kind: ConfigMap, name: ca, namespace: other}]
      - port: 5443
        tls:
          validation:
            mode: AllowInsecureFallback
            caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}]"""


def frontend_result(extra: str = "") -> Any:
    listeners = "".join(
        HTTPS.format(name=n, port=p)
        for n, p in (
            ("valid", 443),
            ("unresolved", 7443),
            ("kind", 8443),
            ("grant", 6443),
            ("fallback", 5443),
        )
    )
    listeners += "\n  - {name: http, port: 80, protocol: HTTP}"
    return run(gateway(FRONTEND, listeners) + extra)


def test_frontend_validation_statuses() -> None:
    result = frontend_result()
    assert listener_conditions(result, "valid")["Accepted"] == ("True", "Accepted")
    assert listener_conditions(result, "valid")["ResolvedRefs"] == ("True", "ResolvedRefs")
    assert listener_conditions(result, "http")["Programmed"] == ("True", "Programmed")
    for name, reason in (
        ("unresolved", "InvalidCACertificateRef"),
        ("kind", "InvalidCACertificateKind"),
        ("grant", "RefNotPermitted"),
    ):
        conds = listener_conditions(result, name)
        assert conds["ResolvedRefs"] == ("False", reason), name
        assert conds["Accepted"] == ("False", "NoValidCACertificate"), name
        assert conds["Programmed"][0] == "False", name
    gw = gateway_conditions(result)
    assert gw["ResolvedRefs"] == ("False", "ListenersNotResolved")
    assert gw["InsecureFrontendValidationMode"] == ("True", "ConfigurationChanged")
    # The model: only the valid listeners' ports, each chain with its validation.
    ports = {lst.port: lst for lst in result.model.listeners}
    assert sorted(ports) == [80, 443, 5443]
    (valid,) = ports[443].https
    assert valid.client_validation is not None
    assert valid.client_validation.ca_pem.strip() == CA.strip()
    assert not valid.client_validation.insecure_fallback
    (fallback,) = ports[5443].https
    assert fallback.client_validation is not None and fallback.client_validation.insecure_fallback


def test_reference_grant_allows_another_namespace_ca() -> None:
    grant = """
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: ca, namespace: other}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: default}]
  to: [{group: "", kind: ConfigMap}]
"""
    conds = listener_conditions(frontend_result(grant), "grant")
    assert conds["Accepted"] == ("True", "Accepted")
    assert conds["ResolvedRefs"] == ("True", "ResolvedRefs")


def downstream_tls(result: Any, port: int) -> dict[str, Any]:
    xds = translate(result.model, ProxyOptions())
    (lst,) = [
        v
        for v in xds.listeners.values()
        if MessageToDict(v)["address"]["socketAddress"].get("portValue") == port
    ]
    chain = MessageToDict(lst)["filterChains"][0]
    ctx: dict[str, Any] = chain["transportSocket"]["typedConfig"]
    return ctx


def test_envoy_requires_or_accepts_client_certificates() -> None:
    result = frontend_result()
    strict = downstream_tls(result, 443)
    assert strict["requireClientCertificate"] is True
    validation = strict["commonTlsContext"]["validationContext"]
    assert validation["trustedCa"]["inlineString"].strip() == CA.strip()
    assert "trustChainVerification" not in validation
    loose = downstream_tls(result, 5443)
    assert loose.get("requireClientCertificate", False) is False
    assert loose["commonTlsContext"]["validationContext"]["trustChainVerification"] == (
        "ACCEPT_UNTRUSTED"
    )


BACKEND = """
apiVersion: v1
kind: Service
metadata: {{name: tls-svc}}
spec: {{ports: [{{name: https, port: 443}}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {{name: p}}
spec:
  targetRefs: [{{group: "", kind: Service, name: tls-svc}}]
  validation:
    caCertificateRefs: [{{group: "", kind: ConfigMap, name: ca}}]
    hostname: abc.example.com
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: plain}}
spec:
  gatewayClassName: cilium
  listeners: [{{name: http, port: 80, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r}}
spec:
  parentRefs: [{{name: gw}}, {{name: plain}}]
  rules: [{{backendRefs: [{{name: tls-svc, port: 443}}]}}]
---
{gateway}
"""


def backend_result(ref: str, extra: str = "") -> Any:
    gw = gateway(
        f"{{backend: {{clientCertificateRef: {ref}}}}}",
        "\n  - {name: http, port: 80, protocol: HTTP}",
    )
    return run(BACKEND.format(gateway=gw) + extra)


def test_backend_client_certificate_gets_own_cluster() -> None:
    result = backend_result("{name: cert}")
    assert gateway_conditions(result)["ResolvedRefs"] == ("True", "ResolvedRefs")
    clusters = {c.name: c for c in result.model.clusters}
    own = clusters["default:tls-svc:443/client/default/gw"]
    assert own.tls is not None and own.tls.client_certificate == "default/cert"
    shared = clusters["default:tls-svc:443"]
    assert shared.tls is not None and shared.tls.client_certificate is None
    used = {}
    for lst in result.model.listeners:
        (vh,) = lst.http
        action = vh.routes[0].action
        assert isinstance(action, Forward)
        used[lst.name.split("/")[1]] = action.backends[0].cluster
    assert used == {"gw": own.name, "plain": shared.name}
    assert "default/cert" in {s.name for s in result.model.secrets}
    xds = translate(result.model, ProxyOptions())
    assert "default/cert" in xds.secrets  # served by SDS, as the cluster asks
    upstream = MessageToDict(xds.clusters[own.name])["transportSocket"]["typedConfig"]
    assert upstream["commonTlsContext"]["tlsCertificateSdsSecretConfigs"][0]["name"] == (
        "default/cert"
    )
    assert "tlsCertificateSdsSecretConfigs" not in MessageToDict(xds.clusters[shared.name])[
        "transportSocket"
    ]["typedConfig"].get("commonTlsContext", {})


def _objects(text: str) -> dict[ObjectKey, Resource]:
    out: dict[ObjectKey, Resource] = {}
    for doc in yaml.safe_load_all(BASE + "---\n" + text):
        if doc:
            obj = parse_object(doc)
            out[obj.key] = obj
    return out


def test_incremental_translation_follows_a_client_certificate_coming_and_going() -> None:
    """Builder + Translator over: a certificate, a route change, no certificate, the
    certificate again: each step's xDS equals a fresh build and translation (the model
    hint must not describe the per-Gateway cluster copies it does not know)."""
    with_cert = BACKEND.format(
        gateway=gateway(
            "{backend: {clientCertificateRef: {name: cert}}}",
            "\n  - {name: http, port: 80, protocol: HTTP}",
        )
    )
    without = BACKEND.format(gateway=gateway("{}", "\n  - {name: http, port: 80, protocol: HTTP}"))
    route_changed = with_cert.replace(
        "rules: [{backendRefs", "hostnames: [x.example.com]\n  rules: [{backendRefs"
    )
    builder, translator = Builder(), Translator()
    previous: dict[ObjectKey, Resource] | None = None
    for text in (with_cert, route_changed, without, with_cert, without):
        objs = _objects(text)
        changed = (
            None
            if previous is None
            else frozenset(
                k for k in objs.keys() | previous.keys() if objs.get(k) != previous.get(k)
            )
        )
        inputs = Inputs(objects=objs, default_pool=("127.10.0.0/16",))
        got = translator.translate(builder.build(inputs, changed).model, ProxyOptions())
        want = translate(build(inputs).model, ProxyOptions())
        g, w = got.by_type(), want.by_type()
        assert g.keys() == w.keys()
        for type_url, resources in w.items():
            assert {n: e.data for n, e in g[type_url].items()} == {
                n: e.data for n, e in resources.items()
            }, type_url
        previous = objs


def test_builder_matches_build_with_client_certificates() -> None:
    text = BACKEND.format(
        gateway=gateway(
            "{backend: {clientCertificateRef: {name: cert}}}",
            "\n  - {name: http, port: 80, protocol: HTTP}",
        )
    )
    objs: dict[ObjectKey, Resource] = {}
    for doc in yaml.safe_load_all(BASE + "---\n" + text):
        if doc:
            obj = parse_object(doc)
            objs[obj.key] = obj
    builder = Builder()
    inputs = Inputs(objects=objs, default_pool=("127.10.0.0/16",))
    first = builder.build(inputs, frozenset(objs))
    again = builder.build(inputs, frozenset())
    assert first.model == again.model == build(inputs).model


def test_backend_client_certificate_problems() -> None:
    malformed = """
---
apiVersion: v1
kind: Secret
metadata: {name: malformed}
data: {}
"""
    for ref, reason in (
        ("{name: nonexistent}", "InvalidClientCertificateRef"),
        ("{group: wrong.example.io, kind: Secret, name: cert}", "InvalidClientCertificateRef"),
        ("{group: '', kind: WrongKind, name: cert}", "InvalidClientCertificateRef"),
        ("{name: malformed}", "InvalidClientCertificateRef"),
        ("{name: cert, namespace: other}", "RefNotPermitted"),
    ):
        result = backend_result(ref, malformed)
        conds = gateway_conditions(result)
        assert conds["ResolvedRefs"] == ("False", reason), ref
        assert conds["Accepted"] == ("True", "Accepted"), ref
        # Still serving, without a certificate of its own.
        assert all("/client/" not in c.name for c in result.model.clusters), ref


SECRET_CAS = f"""
---
apiVersion: v1
kind: Secret
metadata: {{name: ca-secret}}
data: {{ca.crt: {base64.b64encode(CA.encode()).decode()}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: no-ca}}
data: {{other: eA==}}
"""


def test_client_cas_from_secrets() -> None:
    """Implementation-specific: a Secret's PEM `ca.crt` is a CA too; one without it is
    InvalidCACertificateRef."""
    tls = """
    frontend:
      default:
        validation:
          caCertificateRefs: [{group: "", kind: Secret, name: ca-secret}]
      perPort:
      - port: 8443
        tls: {validation: {caCertificateRefs: [{group: "", kind: Secret, name: no-ca}]}}"""
    listeners = HTTPS.format(name="a", port=443) + HTTPS.format(name="b", port=8443)
    result = run(gateway(tls, listeners) + SECRET_CAS)
    assert listener_conditions(result, "a")["ResolvedRefs"] == ("True", "ResolvedRefs")
    (port,) = result.model.listeners
    (chain,) = port.https
    assert chain.client_validation is not None
    assert chain.client_validation.ca_pem.strip() == CA.strip()
    conds = listener_conditions(result, "b")
    assert conds["ResolvedRefs"] == ("False", "InvalidCACertificateRef")
    assert conds["Accepted"] == ("False", "NoValidCACertificate")


def test_listener_set_https_listeners_get_the_gateways_validation() -> None:
    tls = """
    frontend:
      default:
        validation:
          caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}]"""
    text = gateway(tls, HTTPS.format(name="own", port=443)).replace(
        "  tls: ", "  allowedListeners: {namespaces: {from: Same}}\n  tls: ", 1
    )
    text += """
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: ls}
spec:
  parentRef: {name: gw}
  listeners:
  - name: extra
    port: 9443
    protocol: HTTPS
    hostname: extra.example.org
    tls: {certificateRefs: [{name: cert}]}
"""
    result = run(text)
    by_port = {lst.port: lst for lst in result.model.listeners}
    assert sorted(by_port) == [443, 9443]
    for port in (443, 9443):
        (chain,) = by_port[port].https
        assert chain.client_validation is not None, port
