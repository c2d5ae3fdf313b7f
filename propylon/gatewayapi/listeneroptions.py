"""A Gateway's listener-wide knobs from its class's CiliumGatewayClassConfig: source
ranges, gRPC-Web translation, the Server header, access logs."""

from __future__ import annotations

from propylon.model import (
    DEFAULT_LISTENER_OPTIONS,
    AccessLog,
    AccessLogTarget,
    ListenerOptions,
    ServerHeader,
    SourceRanges,
)
from propylon.resources import CiliumGatewayClassConfig, Gateway
from propylon.resources.cilium import (
    DEFAULT_ACCESS_LOG_JSON,
    DEFAULT_ACCESS_LOG_TEXT,
    AccessLogs,
)

GATEWAY_NAME = "%CILIUM_GATEWAY_NAME%"
GATEWAY_NAMESPACE = "%CILIUM_GATEWAY_NAMESPACE%"


def listener_options(gateway: Gateway, config: CiliumGatewayClassConfig | None) -> ListenerOptions:
    if config is None:
        return DEFAULT_LISTENER_OPTIONS
    spec = config.spec
    svc = spec.service
    ranges = None
    if svc.load_balancer_source_ranges:
        ranges = SourceRanges(
            cidrs=tuple(r.strip() for r in svc.load_balancer_source_ranges),
            deny=svc.load_balancer_source_ranges_policy == "Deny",
        )
    options = ListenerOptions(
        source_ranges=ranges,
        grpc_web=spec.http_options.grpc_web_translation.enabled,
        server_header=ServerHeader(spec.envoy.server_header_transformation),
        access_logs=tuple(_access_log(gateway, a) for a in spec.telemetry.access_logs),
    )
    # The shared default keeps listeners of config-less and default-config classes alike.
    return DEFAULT_LISTENER_OPTIONS if options == DEFAULT_LISTENER_OPTIONS else options


def _access_log(gateway: Gateway, spec: AccessLogs) -> AccessLog:
    def fill(template: str) -> str:
        return template.replace(GATEWAY_NAME, gateway.metadata.name).replace(
            GATEWAY_NAMESPACE, gateway.metadata.namespace
        )

    targets = frozenset(AccessLogTarget(t) for t in spec.targets)
    if spec.format == "JSON":
        fields = spec.json_ or DEFAULT_ACCESS_LOG_JSON
        return AccessLog(targets, json=tuple((k, fill(v)) for k, v in sorted(fields.items())))
    return AccessLog(targets, text=fill(spec.text or DEFAULT_ACCESS_LOG_TEXT))
