"""The kinds `get` and `describe` know, with kubectl's names and short names."""

from __future__ import annotations

from dataclasses import dataclass

GATEWAY_GROUP = "gateway.networking.k8s.io"


@dataclass(frozen=True, slots=True)
class KindInfo:
    kind: str
    plural: str
    group: str  # "" for the core group
    namespaced: bool = True
    short_names: tuple[str, ...] = ()

    @property
    def resource(self) -> str:
        """`gateways.gateway.networking.k8s.io`, or `services` for the core group."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def name_prefix(self) -> str:
        """What `-o name` prints before the slash (`gateway.gateway.networking.k8s.io`)."""
        singular = self.kind.lower()
        return f"{singular}.{self.group}" if self.group else singular


KINDS: tuple[KindInfo, ...] = (
    KindInfo("GatewayClass", "gatewayclasses", GATEWAY_GROUP, False, ("gc",)),
    KindInfo("Gateway", "gateways", GATEWAY_GROUP, True, ("gtw",)),
    KindInfo("HTTPRoute", "httproutes", GATEWAY_GROUP),
    KindInfo("GRPCRoute", "grpcroutes", GATEWAY_GROUP),
    KindInfo("TLSRoute", "tlsroutes", GATEWAY_GROUP),
    KindInfo("TCPRoute", "tcproutes", GATEWAY_GROUP),
    KindInfo("UDPRoute", "udproutes", GATEWAY_GROUP),
    KindInfo("ReferenceGrant", "referencegrants", GATEWAY_GROUP, True, ("refgrant",)),
    KindInfo("BackendTLSPolicy", "backendtlspolicies", GATEWAY_GROUP, True, ("btlspolicy",)),
    KindInfo("ListenerSet", "listenersets", GATEWAY_GROUP, True, ("lset",)),
    KindInfo("XListenerSet", "xlistenersets", "gateway.networking.x-k8s.io"),
    KindInfo("Service", "services", "", True, ("svc",)),
    KindInfo("EndpointSlice", "endpointslices", "discovery.k8s.io"),
    KindInfo("Secret", "secrets", ""),
    KindInfo("ConfigMap", "configmaps", "", True, ("cm",)),
    KindInfo("Namespace", "namespaces", "", False, ("ns",)),
    KindInfo("CiliumGatewayClassConfig", "ciliumgatewayclassconfigs", "cilium.io", True, ("cgcc",)),
    KindInfo(
        "CiliumLoadBalancerIPPool",
        "ciliumloadbalancerippools",
        "cilium.io",
        False,
        ("ippools", "ippool", "lbippool", "lbippools"),
    ),
)


def _names(info: KindInfo) -> set[str]:
    return {info.kind.lower(), info.plural, *info.short_names}


_BY_NAME: dict[str, KindInfo] = {name: info for info in KINDS for name in _names(info)}


class UnknownResourceError(LookupError):
    pass


def resolve_kind(name: str) -> KindInfo:
    """`gateways`, `gateway`, `gtw`, `Gateway`, `gateways.gateway.networking.k8s.io`..."""
    lowered = name.lower()
    info = _BY_NAME.get(lowered)
    if info is None and "." in lowered:
        head, _, group = lowered.partition(".")
        candidate = _BY_NAME.get(head)
        if candidate is not None and candidate.group == group:
            info = candidate
    if info is None:
        raise UnknownResourceError(f'the server doesn\'t have a resource type "{name}"')
    return info
