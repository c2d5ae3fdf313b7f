"""Manifests the runtime tests share: the `cilium` GatewayClass and a Gateway `gw` of
that class with one HTTP listener on 8080."""

from __future__ import annotations

GATEWAY_CLASS = """\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: cilium
spec:
  controllerName: io.cilium/gateway-controller
"""

GATEWAY = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  gatewayClassName: cilium
  listeners:
  - name: http
    port: 8080
    protocol: HTTP
"""
