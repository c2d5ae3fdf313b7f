"""GatewayClass acceptance: ours when controllerName is Cilium's; parametersRef must name
an existing CiliumGatewayClassConfig."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from propylon.gatewayapi import conditions as c
from propylon.gatewayapi.index import Index
from propylon.resources import CiliumGatewayClassConfig, GatewayClass, ObjectKey

CILIUM_GROUP = "cilium.io"
CONFIG_KIND = "CiliumGatewayClassConfig"
SUPPORTED_BUNDLE_VERSION = "v1.4.1"

# Features `build` implements (status.supportedFeatures), sorted as the API asks.
SUPPORTED_FEATURES = (
    "BackendTLSPolicy",
    "BackendTLSPolicySANValidation",
    "GRPCRoute",
    "GRPCRouteNamedRouteRule",
    "Gateway",
    "GatewayAddressEmpty",
    "GatewayBackendClientCertificate",
    "GatewayFrontendClientCertificateValidation",
    "GatewayFrontendClientCertificateValidationInsecureFallback",
    "GatewayHTTPListenerIsolation",
    "GatewayHTTPSListenerDetectMisdirectedRequests",
    "GatewayInfrastructure",  # Gateway API v1.5+ name
    "GatewayInfrastructurePropagation",  # v1.4's
    "GatewayPort8080",
    "GatewayStaticAddresses",
    "HTTPRoute",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteBackendProtocolH2C",
    "HTTPRouteBackendProtocolWebSocket",
    "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteBackendTimeout",
    "HTTPRouteCORS",
    "HTTPRouteDestinationPortMatching",
    "HTTPRouteHostRewrite",
    "HTTPRouteMethodMatching",
    "HTTPRouteNamedRouteRule",
    "HTTPRouteParentRefPort",
    "HTTPRoutePathRedirect",
    "HTTPRoutePathRewrite",
    "HTTPRoutePortRedirect",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteResponseHeaderModification",
    "HTTPRouteRetry",
    "HTTPRouteRetryBackendTimeout",
    "HTTPRouteRetryConnectionError",
    "HTTPRouteSchemeRedirect",
    "ListenerSet",
    "ReferenceGrant",
    "TCPRoute",
    "TLSRoute",
    "TLSRouteModeMixed",
    "TLSRouteModeTerminate",
    "UDPRoute",
)


@dataclass(frozen=True)
class ClassState:
    gateway_class: GatewayClass
    accepted: bool
    message: str
    config: CiliumGatewayClassConfig | None


def evaluate_classes(
    index: Index, refused: Mapping[ObjectKey, tuple[int, str]] | None = None
) -> dict[str, ClassState]:
    """Our GatewayClasses by name (classes of other controllers are absent). `refused`:
    class configs a source refused (generation, what is wrong), which a parametersRef
    may name."""
    out: dict[str, ClassState] = {}
    for name, gc in sorted(index.gateway_classes.items()):
        if gc.spec.controller_name != c.CONTROLLER_NAME:
            continue
        config: CiliumGatewayClassConfig | None = None
        problem = ""
        ref = gc.spec.parameters_ref
        if ref is not None:
            if ref.group != CILIUM_GROUP or ref.kind != CONFIG_KIND:
                problem = (
                    f"parametersRef must refer to {CILIUM_GROUP}/{CONFIG_KIND}, "
                    f"not {ref.group or 'core'}/{ref.kind}"
                )
            elif not ref.namespace:
                problem = f"parametersRef to {CONFIG_KIND} {ref.name} must set a namespace"
            else:
                config = index.class_configs.get((ref.namespace, ref.name))
                invalid = (refused or {}).get(ObjectKey(CONFIG_KIND, ref.namespace, ref.name))
                if config is None and invalid is not None:
                    problem = f"{CONFIG_KIND} {ref.namespace}/{ref.name} is invalid: {invalid[1]}"
                elif config is None:
                    problem = f"{CONFIG_KIND} {ref.namespace}/{ref.name} not found"
        out[name] = ClassState(gc, not problem, problem or "Valid GatewayClass", config)
    return out


# Only with gatewayAPI.enableAppProtocol (or enableAlpn): Service ports' appProtocol.
APP_PROTOCOL_FEATURES = frozenset(
    {"HTTPRouteBackendProtocolH2C", "HTTPRouteBackendProtocolWebSocket"}
)


def class_status(state: ClassState, *, app_protocol: bool = True) -> dict[str, Any]:
    gen = state.gateway_class.metadata.generation
    features = [f for f in SUPPORTED_FEATURES if app_protocol or f not in APP_PROTOCOL_FEATURES]
    return {
        "conditions": [
            c.condition(
                c.ACCEPTED,
                state.accepted,
                c.R_ACCEPTED if state.accepted else c.R_INVALID_PARAMETERS,
                state.message,
                gen,
            ),
            c.condition(
                c.SUPPORTED_VERSION,
                True,
                c.R_SUPPORTED_VERSION,
                f"Gateway API CRDs {SUPPORTED_BUNDLE_VERSION} are supported",
                gen,
            ),
        ],
        "supportedFeatures": [{"name": f} for f in features],
    }
