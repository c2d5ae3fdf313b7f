"""The class config's and the values' knobs in the pure core: what reaches the model
(listener options with the Gateway placeholders filled in, backend protocols) and the
generated Service, and how a wrong field is reported."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from propylon.gatewayapi import Inputs, build
from propylon.model import (
    DEFAULT_LISTENER_OPTIONS,
    AccessLogTarget,
    AppProtocol,
    ServerHeader,
    SourceRanges,
)
from propylon.resources import ObjectKey, Resource, ResourceError, parse_object
from propylon.values import Values

OBJECTS = """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: plain}
spec: {controllerName: io.cilium/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: tuned}
spec:
  controllerName: io.cilium/gateway-controller
  parametersRef: {group: cilium.io, kind: CiliumGatewayClassConfig, name: cfg, namespace: infra}
---
apiVersion: cilium.io/v2alpha1
kind: CiliumGatewayClassConfig
metadata: {name: cfg, namespace: infra}
spec:
  service:
    loadBalancerSourceRanges: [" 198.18.0.0/16", 127.0.0.1/32]
    loadBalancerSourceRangesPolicy: Deny
    allocateLoadBalancerNodePorts: false
    trafficDistribution: PreferClose
  httpOptions: {grpcWebTranslation: {enabled: false}}
  envoy: {serverHeaderTransformation: APPEND_IF_ABSENT}
  telemetry:
    accessLogs:
    - format: JSON
      json: {gw: "%CILIUM_GATEWAY_NAMESPACE%/%CILIUM_GATEWAY_NAME%"}
      targets: [HTTP, TCP]
    - format: Text
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: tuned-gw, namespace: apps}
spec:
  gatewayClassName: tuned
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: plain-gw, namespace: apps}
spec:
  gatewayClassName: plain
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: apps}
spec:
  parentRefs: [{name: tuned-gw}, {name: plain-gw}]
  rules:
  - backendRefs: [{name: svc, port: 80}, {name: svc, port: 81}, {name: svc, port: 82}]
---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: apps}
spec:
  ports:
  - {name: h2c, port: 80, appProtocol: kubernetes.io/h2c}
  - {name: ws, port: 81, appProtocol: kubernetes.io/ws}
  - {name: wss, port: 82, appProtocol: kubernetes.io/wss}
"""


def objects(text: str) -> dict[ObjectKey, Resource]:
    out = {}
    for doc in yaml.safe_load_all(text):
        if doc:
            obj = parse_object(doc)
            out[obj.key] = obj
    return out


def run(values: dict[str, Any] | None = None) -> Any:
    return build(
        Inputs(
            objects=objects(OBJECTS),
            values=Values.model_validate(values or {}),
            default_pool=("127.10.0.0/16",),
        )
    )


def test_listener_options_from_the_class_config() -> None:
    result = run()
    by_name = {lst.name: lst for lst in result.model.listeners}
    assert by_name["apps/plain-gw/80"].options is DEFAULT_LISTENER_OPTIONS
    options = by_name["apps/tuned-gw/80"].options
    assert options.source_ranges == SourceRanges(("198.18.0.0/16", "127.0.0.1/32"), deny=True)
    assert options.grpc_web is False
    assert options.server_header is ServerHeader.APPEND_IF_ABSENT
    json_log, text_log = options.access_logs
    assert json_log.json == (("gw", "apps/tuned-gw"),)
    assert json_log.targets == {AccessLogTarget.HTTP, AccessLogTarget.TCP}
    # Cilium's default text format, for HTTP only.
    assert text_log.text is not None and text_log.text.startswith("[%START_TIME%]")
    assert text_log.targets == {AccessLogTarget.HTTP}


def test_service_fields_from_the_class_config() -> None:
    result = run()
    svc = next(s for s in result.services if s.metadata.name == "cilium-gateway-tuned-gw")
    assert svc.spec.allocate_load_balancer_node_ports is False
    assert svc.spec.traffic_distribution == "PreferClose"
    assert svc.spec.load_balancer_source_ranges == [" 198.18.0.0/16", "127.0.0.1/32"]


def test_a_node_port_service_has_no_load_balancer_fields() -> None:
    """The API server refuses loadBalancerClass and loadBalancerSourceRanges on a Service
    that is not a LoadBalancer (seen on the dev cluster): a NodePort class config's
    ranges are enforced by Envoy only, and its class is left out."""
    text = OBJECTS.replace(
        "    allocateLoadBalancerNodePorts: false\n",
        "    allocateLoadBalancerNodePorts: false\n    type: NodePort\n"
        "    loadBalancerClass: io.cilium/l2-announcer\n",
    )
    assert "type: NodePort" in text
    result = build(Inputs(objects=objects(text), default_pool=("127.10.0.0/16",)))
    svc = next(s for s in result.services if s.metadata.name == "cilium-gateway-tuned-gw")
    assert svc.spec.type == "NodePort"
    assert svc.spec.load_balancer_class is None
    assert svc.spec.load_balancer_source_ranges is None
    assert svc.spec.allocate_load_balancer_node_ports is None
    assert svc.spec.traffic_distribution == "PreferClose"
    by_name = {lst.name: lst for lst in result.model.listeners}
    ranges = by_name["apps/tuned-gw/80"].options.source_ranges
    assert ranges == SourceRanges(("198.18.0.0/16", "127.0.0.1/32"), deny=True)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {},
            {
                "apps:svc:80": AppProtocol.H2C,
                "apps:svc:81": AppProtocol.WEBSOCKET,
                "apps:svc:82": AppProtocol.WEBSOCKET,
            },
        ),
        (
            {"gatewayAPI": {"enableAppProtocol": False, "enableAlpn": False}},
            {n: AppProtocol.HTTP1 for n in ("apps:svc:80", "apps:svc:81", "apps:svc:82")},
        ),
        # enableAlpn implies appProtocol, as in Cilium.
        (
            {"gatewayAPI": {"enableAppProtocol": False}},
            {
                "apps:svc:80": AppProtocol.H2C,
                "apps:svc:81": AppProtocol.WEBSOCKET,
                "apps:svc:82": AppProtocol.WEBSOCKET,
            },
        ),
    ],
)
def test_app_protocol(values: dict[str, Any], expected: dict[str, AppProtocol]) -> None:
    result = run(values)
    assert {c.name: c.protocol for c in result.model.clusters} == expected
    # The class advertises the GEP-1911 features only when it honours appProtocol.
    features = {
        f["name"]
        for f in result.statuses[ObjectKey("GatewayClass", "", "plain")]["supportedFeatures"]
    }
    honoured = AppProtocol.H2C in expected.values()
    assert ("HTTPRouteBackendProtocolH2C" in features) is honoured
    assert ("HTTPRouteBackendProtocolWebSocket" in features) is honoured


def test_a_wrong_source_range_names_the_field() -> None:
    doc = yaml.safe_load(
        """
apiVersion: cilium.io/v2alpha1
kind: CiliumGatewayClassConfig
metadata: {name: cfg, namespace: infra}
spec: {service: {loadBalancerSourceRanges: [198.18.0.0/16, not-a-cidr]}}
"""
    )
    with pytest.raises(ResourceError) as err:
        parse_object(doc)
    assert "loadBalancerSourceRanges" in str(err.value)
    assert "'not-a-cidr' is not a CIDR" in str(err.value)
