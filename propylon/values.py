"""Helm-style values: the operational knobs users know from Cilium's chart.

Read from a YAML file (`propylon run --values FILE`) and `--set a.b=c` flags. Only the keys
Propylon acts on are modelled; unknown keys are kept out of the way (ignored), as helm
does for values a chart does not use.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CILIUM_CONTROLLER_NAME = "io.cilium/gateway-controller"


class _Values(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class NodeSelector(_Values):
    match_labels: dict[str, str] = Field(default_factory=dict, alias="matchLabels")


class HostNetwork(_Values):
    enabled: bool = False
    nodes: NodeSelector = NodeSelector()


class GatewayClassValues(_Values):
    # "auto": create the `cilium` GatewayClass when the Gateway API CRDs are there
    # (always, standalone); "true"/"false" force it.
    create: Literal["auto", "true", "false"] | bool = "auto"


class SecretsNamespace(_Values):
    # Where TLS Secrets referenced by Gateways are copied to (sync) for the agents
    # (the chart creates the namespace; the copy is not implemented yet).
    create: bool = True
    name: str = "cilium-secrets"
    sync: bool = True


class GatewayAPIValues(_Values):
    enabled: bool = True
    xff_num_trusted_hops: int = Field(default=0, ge=0, alias="xffNumTrustedHops")
    host_network: HostNetwork = Field(default=HostNetwork(), alias="hostNetwork")
    gateway_class: GatewayClassValues = Field(default=GatewayClassValues(), alias="gatewayClass")
    external_traffic_policy: Literal["Cluster", "Local"] = Field(
        default="Cluster", alias="externalTrafficPolicy"
    )
    secrets_namespace: SecretsNamespace = Field(
        default=SecretsNamespace(), alias="secretsNamespace"
    )
    # Listeners expect a PROXY protocol (v1/v2) header and take the client's address
    # from it; a connection without one is closed.
    enable_proxy_protocol: bool = Field(default=False, alias="enableProxyProtocol")
    # HTTPS listeners offer h2 and http/1.1 by ALPN; implies enableAppProtocol, as in
    # Cilium. Propylon's default is true (Cilium's is false): it always did both.
    enable_alpn: bool = Field(default=True, alias="enableAlpn")
    # A Service port's appProtocol picks the backend protocol (GEP-1911):
    # kubernetes.io/h2c (HTTP/2 cleartext), kubernetes.io/ws and kubernetes.io/wss
    # (WebSocket upgrades). Off: HTTP/1.1 to every backend except GRPCRoute's (HTTP/2).
    enable_app_protocol: bool = Field(default=True, alias="enableAppProtocol")

    @property
    def app_protocol(self) -> bool:
        return self.enable_app_protocol or self.enable_alpn


class Capabilities(_Values):
    keep_cap_net_bind_service: bool = Field(default=False, alias="keepCapNetBindService")
    envoy: tuple[str, ...] = ()


class SecurityContext(_Values):
    capabilities: Capabilities = Capabilities()


class EnvoyValues(_Values):
    # None means "default for a new installation", which is a separate Envoy (True).
    enabled: bool | None = None
    security_context: SecurityContext = Field(default=SecurityContext(), alias="securityContext")


class AgentCapabilities(_Values):
    cilium_agent: tuple[str, ...] = Field(default=(), alias="ciliumAgent")


class AgentSecurityContext(_Values):
    capabilities: AgentCapabilities = AgentCapabilities()


class Values(_Values):
    gateway_api: GatewayAPIValues = Field(default=GatewayAPIValues(), alias="gatewayAPI")
    envoy: EnvoyValues = EnvoyValues()
    security_context: AgentSecurityContext = Field(
        default=AgentSecurityContext(), alias="securityContext"
    )

    @property
    def separate_envoy(self) -> bool:
        """True: Envoy runs as its own process/DaemonSet; False: embedded in the agent."""
        return self.envoy.enabled is not False

    @property
    def may_bind_privileged_ports(self) -> bool:
        """Host-network listeners on ports <= 1023 need NET_BIND_SERVICE kept for Envoy."""
        caps = self.envoy.security_context.capabilities
        if not caps.keep_cap_net_bind_service:
            return False
        granted = (
            caps.envoy if self.separate_envoy else self.security_context.capabilities.cilium_agent
        )
        return "NET_BIND_SERVICE" in granted
