"""Gateways: acceptance, addresses, listener states, status and the generated Service."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

from propylon.gatewayapi import conditions as c
from propylon.gatewayapi.addresses import AddressRequest, Allocation
from propylon.gatewayapi.gatewayclass import ClassState
from propylon.gatewayapi.listeners import ListenerState
from propylon.model import Secret as ModelSecret
from propylon.resources import (
    Gateway,
    LoadBalancerIngress,
    LoadBalancerStatus,
    ObjectMeta,
    Service,
    ServicePort,
    ServiceSpec,
    ServiceStatus,
)
from propylon.store.diagnostics import Diagnostic, warning

LB_IPAM_ANNOTATIONS = ("io.cilium/lb-ipam-ips", "lbipam.cilium.io/ips")
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
OWNING_GATEWAY_LABEL = "io.cilium.gateway/owning-gateway"


SERVICE_NAME_MAX = 63  # a Service name is a DNS-1035 label
_HASH_LETTERS = str.maketrans("013ae", "ghkmt")


def shorten_name(name: str, limit: int = SERVICE_NAME_MAX) -> str:
    """`name`, or when longer than `limit` its first `limit - 11` characters, "-" and
    ten characters of its SHA-256 (hex, with 0 1 3 a e spelt g h k m t): Cilium's rule
    (pkg/shortener), so a long Gateway name gets the Service name Cilium would give it."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10].translate(_HASH_LETTERS)
    return f"{name[: limit - 11]}-{digest}"


def service_name(gateway: Gateway) -> str:
    return shorten_name(f"cilium-gateway-{gateway.metadata.name}")


@dataclass
class GatewayState:
    gateway: Gateway
    class_state: ClassState
    listeners: list[ListenerState]
    accepted: bool = True
    accepted_reason: str = c.R_ACCEPTED
    accepted_message: str = "Gateway is accepted"
    address_request: AddressRequest | None = None
    allocation: Allocation | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    # gatewayAPI.externalTrafficPolicy: used when the class has no CiliumGatewayClassConfig
    # (with one, its own field decides; the CRD defaults it to Cluster).
    default_traffic_policy: Literal["Cluster", "Local"] = "Cluster"
    # hostNetwork in Kubernetes: the selected nodes' addresses (status shows them all).
    host_addresses: tuple[str, ...] = ()
    # Accepted ListenerSets (propylon.gatewayapi.listenersets), whose listeners follow
    # the Gateway's own in `listeners`.
    attached_listener_sets: int = 0
    # spec.tls.backend.clientCertificateRef (`backendclientcert`): the certificate, or
    # why it cannot be used (ResolvedRefs reason, message).
    backend_certificate: ModelSecret | None = None
    backend_problem: tuple[str, str] | None = None

    @property
    def own_listeners(self) -> list[ListenerState]:
        """The listeners of the Gateway's spec (not its ListenerSets', which follow)."""
        return self.listeners[: len(self.gateway.spec.listeners)]

    @property
    def address(self) -> str | None:
        if self.allocation is None or not self.accepted:
            return None
        return self.allocation.address

    @property
    def programmed(self) -> bool:
        return self.address is not None

    def service_labels(self) -> dict[str, str]:
        gw = self.gateway
        infra = gw.spec.infrastructure
        labels = dict(infra.labels) if infra else {}
        # Label values are at most 63 characters: shortened as Cilium does.
        labels[GATEWAY_NAME_LABEL] = shorten_name(gw.metadata.name)
        labels[OWNING_GATEWAY_LABEL] = shorten_name(gw.metadata.name)
        return labels

    def status(self) -> dict[str, Any]:
        gen = self.gateway.metadata.generation
        if self.programmed:
            prog = c.condition(c.PROGRAMMED, True, c.R_PROGRAMMED, "Gateway is programmed", gen)
        elif not self.accepted:
            prog = c.condition(c.PROGRAMMED, False, c.R_INVALID, "Gateway is not accepted", gen)
        else:
            alloc = self.allocation
            reason = alloc.reason if alloc and alloc.reason else c.R_ADDRESS_NOT_ASSIGNED
            msg = alloc.message if alloc and alloc.message else "no address assigned"
            prog = c.condition(c.PROGRAMMED, False, reason, msg, gen)
        out: dict[str, Any] = {}
        if self.address is not None:
            shown = self.host_addresses or (self.address,)
            out["addresses"] = [{"type": "IPAddress", "value": a} for a in shown]
        out["conditions"] = [
            c.condition(
                c.ACCEPTED, self.accepted, self.accepted_reason, self.accepted_message, gen
            ),
            prog,
            *self._tls_conditions(gen),
        ]
        out["listeners"] = [li.status(gen) for li in self.own_listeners]
        if self.attached_listener_sets or self.gateway.spec.allowed_listeners is not None:
            out["attachedListenerSets"] = self.attached_listener_sets
        return out

    def _tls_conditions(self, gen: int) -> list[dict[str, Any]]:
        """With spec.tls: ResolvedRefs (the backend client certificate, then a summary
        of the listeners') and, when any validation is AllowInsecureFallback,
        InsecureFrontendValidationMode."""
        tls = self.gateway.spec.tls
        if tls is None:
            return []
        if self.backend_problem is not None:
            reason, message = self.backend_problem
            refs = c.condition(c.RESOLVED_REFS, False, reason, message, gen)
        else:
            bad = [li.name for li in self.own_listeners if li.refs_reason != c.R_RESOLVED_REFS]
            refs = c.condition(
                c.RESOLVED_REFS,
                not bad,
                c.R_LISTENERS_NOT_RESOLVED if bad else c.R_RESOLVED_REFS,
                f"listeners with unresolved references: {', '.join(bad)}"
                if bad
                else "All references are resolved",
                gen,
            )
        out = [refs]
        frontend = tls.frontend
        if frontend is not None:
            modes = [
                v.mode
                for v in (
                    frontend.default.validation,
                    *(p.tls.validation for p in frontend.per_port),
                )
                if v is not None
            ]
            if "AllowInsecureFallback" in modes:
                out.append(
                    c.condition(
                        c.INSECURE_FRONTEND_VALIDATION_MODE,
                        True,
                        c.R_CONFIGURATION_CHANGED,
                        "spec.tls.frontend allows clients without a valid certificate "
                        "(AllowInsecureFallback)",
                        gen,
                    )
                )
        return out

    def generated_service(self) -> Service:
        gw = self.gateway
        config = self.class_state.config
        svc_cfg = config.spec.service if config is not None else None
        svc_type = svc_cfg.type if svc_cfg is not None else "LoadBalancer"
        infra = gw.spec.infrastructure
        # One Service port per listener port and transport (UDP listeners: `-udp`).
        ports = sorted({(li.spec.port, li.spec.protocol == "UDP") for li in self.listeners})
        status = None
        if svc_type == "LoadBalancer" and self.address is not None:
            status = ServiceStatus(
                load_balancer=LoadBalancerStatus(ingress=[LoadBalancerIngress(ip=self.address)])
            )
        external = svc_type in ("LoadBalancer", "NodePort")
        lb_cfg = svc_cfg if svc_type == "LoadBalancer" else None
        return Service(
            metadata=ObjectMeta(
                name=service_name(gw),
                namespace=gw.metadata.namespace,
                labels=self.service_labels(),
                annotations=dict(infra.annotations) if infra else {},
                # Created with its Gateway, so its AGE is the Gateway's.
                creationTimestamp=gw.metadata.creation_timestamp,
            ),
            spec=ServiceSpec(
                type=svc_type,
                ports=tuple(
                    ServicePort(name=f"port-{p}-udp", port=p, protocol="UDP")
                    if udp
                    else ServicePort(name=f"port-{p}", port=p, protocol="TCP")
                    for p, udp in ports
                ),
                external_traffic_policy=(
                    svc_cfg.external_traffic_policy if svc_cfg else self.default_traffic_policy
                )
                if external
                else None,
                # LoadBalancer only, as the API server allows them (a NodePort Service
                # with them is refused); Envoy enforces the source ranges either way.
                load_balancer_class=lb_cfg.load_balancer_class if lb_cfg else None,
                load_balancer_source_ranges=(lb_cfg.load_balancer_source_ranges or None)
                if lb_cfg
                else None,
                ip_families=list(svc_cfg.ip_families) or None if svc_cfg else None,
                ip_family_policy=svc_cfg.ip_family_policy if svc_cfg else None,
                # Only meaningful (and only allowed by the API server) for LoadBalancer.
                allocate_load_balancer_node_ports=svc_cfg.allocate_load_balancer_node_ports
                if svc_cfg and svc_type == "LoadBalancer"
                else None,
                traffic_distribution=svc_cfg.traffic_distribution if svc_cfg else None,
            ),
            status=status,
        )


def evaluate_gateway(state: GatewayState) -> None:
    """Acceptance (class, addresses, listeners) and the address request."""
    gw = state.gateway
    if not state.class_state.accepted:
        state.accepted = False
        state.accepted_reason = c.R_INVALID
        state.accepted_message = (
            f"GatewayClass {gw.spec.gateway_class_name} is not accepted: "
            f"{state.class_state.message}"
        )
        return
    infra = gw.spec.infrastructure
    if infra is not None and infra.parameters_ref is not None:
        # No kind of Gateway parameters exists here (Cilium's knobs are the class's
        # CiliumGatewayClassConfig): the Gateway API asks for a rejection.
        ref = infra.parameters_ref
        state.accepted = False
        state.accepted_reason = c.R_INVALID_PARAMETERS
        state.accepted_message = (
            f"spec.infrastructure.parametersRef {ref.group or 'core'}/{ref.kind} {ref.name}: "
            "no Gateway parameters kind is supported (use the GatewayClass's "
            "CiliumGatewayClassConfig)"
        )
        return

    labels = {
        **state.service_labels(),
        "io.kubernetes.service.namespace": gw.metadata.namespace,
        "io.kubernetes.service.name": service_name(gw),
    }
    annotation = next(
        (
            (k, infra.annotations[k])
            for k in LB_IPAM_ANNOTATIONS
            if infra is not None and infra.annotations.get(k, "").strip()
        ),
        None,
    )
    if annotation is not None:
        key, value = annotation
        wanted = tuple(ip.strip() for ip in value.split(",") if ip.strip())
        if gw.spec.addresses:
            state.diagnostics.append(
                warning(
                    f"spec.addresses is ignored because spec.infrastructure.annotations[{key}] "
                    "sets the address",
                    object=str(gw.key),
                    field="spec.addresses",
                )
            )
        state.address_request = AddressRequest(gw.key, labels, wanted, require_all=False)
    else:
        unsupported = [a for a in gw.spec.addresses if a.type != "IPAddress"]
        if unsupported:
            state.accepted = False
            state.accepted_reason = c.R_UNSUPPORTED_ADDRESS
            kinds = ", ".join(sorted({a.type for a in unsupported}))
            state.accepted_message = f"address type {kinds} is not supported (only IPAddress)"
            return
        wanted = tuple(a.value for a in gw.spec.addresses if a.value)
        state.address_request = AddressRequest(gw.key, labels, wanted, require_all=True)

    usable = [li for li in state.listeners if li.accepted]
    if not usable:
        state.accepted = False
        state.accepted_reason = c.R_LISTENERS_NOT_VALID
        state.accepted_message = "no listener is valid"
    elif len(usable) < len(state.listeners):
        state.accepted_reason = c.R_LISTENERS_NOT_VALID
        bad = ", ".join(li.name for li in state.listeners if not li.accepted)
        state.accepted_message = f"Gateway is accepted, but some listeners are not valid: {bad}"
