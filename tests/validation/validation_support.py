"""Helpers for the validation tests: build a small world and read its statuses."""

from __future__ import annotations

import base64
import datetime
from typing import Any

import yaml

from propylon.gatewayapi import BuildResult, Inputs, build
from propylon.resources import ObjectKey, Resource, parse_object

BASE = """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: cilium}
spec: {controllerName: io.cilium/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: cilium
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: v1
kind: Service
metadata: {name: svc}
spec: {ports: [{port: 8080}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: good}
spec:
  parentRefs: [{name: gw}]
  hostnames: [good.example]
  rules: [{backendRefs: [{name: svc, port: 8080}]}]
"""


def objects(text: str, base: str = BASE) -> dict[ObjectKey, Resource]:
    out = {}
    for doc in yaml.safe_load_all(base + "---\n" + text):
        if doc:
            obj = parse_object(doc)
            out[obj.key] = obj
    return out


def run(text: str, base: str = BASE) -> BuildResult:
    return build(Inputs(objects=objects(text, base), default_pool=("127.10.0.0/16",)))


def route_conditions(result: BuildResult, name: str, kind: str = "HTTPRoute") -> dict[str, Any]:
    status = result.statuses[ObjectKey(kind, "default", name)]
    (parent,) = status["parents"]
    return {c["type"]: c for c in parent["conditions"]}


def served_route_names(result: BuildResult) -> set[str]:
    return {
        route.name.split("/")[2]
        for listener in result.model.listeners
        for vhost in listener.http or ()
        for route in vhost.routes
    }


def tls_pair(common_name: str = "www.example.com") -> tuple[str, str]:
    """A self-signed certificate and its key (PEM), made with `cryptography`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = datetime.datetime(2026, 1, 1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    crt = cert.public_bytes(serialization.Encoding.PEM).decode()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return crt, pem


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
