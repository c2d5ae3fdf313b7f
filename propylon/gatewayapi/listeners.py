"""Listener validation: protocol, port, conflicts, allowed route kinds and namespaces,
certificate references."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from propylon.gatewayapi import conditions as c
from propylon.gatewayapi.envoyrules import certificate_problem
from propylon.gatewayapi.frontendtls import resolve_client_validation
from propylon.gatewayapi.index import Index
from propylon.gatewayapi.names import name_part
from propylon.gatewayapi.referencegrants import permitted
from propylon.model import ClientValidation
from propylon.model import Secret as ModelSecret
from propylon.resources import GATEWAY_GROUP, Gateway, Listener, ListenerSet
from propylon.values import Values

HTTP_KINDS = ("HTTPRoute", "GRPCRoute")
PROTOCOL_KINDS: dict[str, tuple[str, ...]] = {
    "HTTP": HTTP_KINDS,
    "HTTPS": HTTP_KINDS,
    "TLS": ("TLSRoute",),
    "TCP": ("TCPRoute",),
    "UDP": ("UDPRoute",),
}
TLS_SECRET_TYPE = "kubernetes.io/tls"


@dataclass
class ListenerState:
    gateway: Gateway
    spec: Listener
    # The ListenerSet that brings this listener to `gateway`; None: the Gateway's own.
    owner: ListenerSet | None = None
    supported_kinds: tuple[str, ...] = ()
    accepted: bool = True
    accepted_reason: str = c.R_ACCEPTED
    accepted_message: str = "Listener is valid"
    conflicted_reason: str = ""
    conflicted_message: str = ""
    refs_reason: str = c.R_RESOLVED_REFS
    refs_message: str = "All references are resolved"
    certificates: tuple[ModelSecret, ...] = ()
    # Gateway spec.tls.frontend for this HTTPS listener's port (`frontendtls`).
    client_validation: ClientValidation | None = None
    attached_routes: set[tuple[str, str, str]] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def usable(self) -> bool:
        """Routes may attach (an unresolved certificate still lets them count)."""
        return self.accepted and not self.conflicted_reason

    @property
    def terminates(self) -> bool:
        """The Gateway terminates TLS: HTTPS, or TLS with `tls.mode: Terminate` (whose
        TLSRoutes get the decrypted stream)."""
        if self.spec.protocol == "HTTPS":
            return True
        tls = self.spec.tls
        return self.spec.protocol == "TLS" and tls is not None and tls.mode == "Terminate"

    @property
    def programmable(self) -> bool:
        if not self.usable:
            return False
        return not self.terminates or bool(self.certificates)

    @property
    def home_namespace(self) -> str:
        """The namespace `allowedRoutes: Same` and certificateRefs are relative to."""
        owner = self.owner or self.gateway
        return owner.metadata.namespace

    def reject(self, reason: str, message: str) -> None:
        if self.accepted:
            self.accepted, self.accepted_reason, self.accepted_message = False, reason, message

    def unresolved(self, reason: str, message: str) -> None:
        if self.refs_reason == c.R_RESOLVED_REFS:
            self.refs_reason, self.refs_message = reason, message
        else:
            self.refs_message += f"; {message}"

    def allows_namespace(self, index: Index, namespace: str) -> bool:
        ns = self.spec.allowed_routes.namespaces
        if ns.from_ == "All":
            return True
        if ns.from_ == "Same":
            return namespace == self.home_namespace
        if ns.selector is None:
            return False
        return ns.selector.matches(index.namespace_labels(namespace))

    def status(self, generation: int) -> dict[str, Any]:
        programmed = self.programmable
        if programmed:
            prog_reason, prog_msg = c.R_PROGRAMMED, "Listener is programmed"
        else:
            prog_reason = c.R_INVALID
            prog_msg = self.conflicted_message or (
                self.accepted_message if not self.accepted else self.refs_message
            )
        if self.owner is not None and self.conflicted_reason:
            # A ListenerSet's listener that lost a conflict (GEP-1713) is not accepted,
            # for the reason of the conflict.
            prog_reason = self.conflicted_reason
        return {
            "name": self.name,
            "supportedKinds": [{"group": GATEWAY_GROUP, "kind": k} for k in self.supported_kinds],
            "attachedRoutes": len(self.attached_routes),
            "conditions": [
                c.condition(
                    c.ACCEPTED,
                    self.accepted,
                    self.accepted_reason,
                    self.accepted_message,
                    generation,
                ),
                c.condition(c.PROGRAMMED, programmed, prog_reason, prog_msg, generation),
                c.condition(
                    c.RESOLVED_REFS,
                    self.refs_reason == c.R_RESOLVED_REFS,
                    self.refs_reason,
                    self.refs_message,
                    generation,
                ),
                c.condition(
                    c.CONFLICTED,
                    bool(self.conflicted_reason),
                    self.conflicted_reason or c.R_NO_CONFLICTS,
                    self.conflicted_message or "No conflicts",
                    generation,
                ),
            ],
        }


def _is_pem(data: bytes | None, marker: str) -> bool:
    if not data:
        return False
    text = data.decode("utf-8", errors="replace")
    return "-----BEGIN " in text and marker in text and "-----END " in text


def _resolve_certificates(index: Index, state: ListenerState) -> None:
    home = state.owner or state.gateway
    tls = state.spec.tls
    if tls is None or not tls.certificate_refs:
        state.unresolved(
            c.R_INVALID_CERTIFICATE_REF, f"{state.spec.protocol} listener has no certificateRefs"
        )
        return
    certs: list[ModelSecret] = []
    for i, ref in enumerate(tls.certificate_refs):
        ns = ref.namespace or home.metadata.namespace
        where = f"certificateRefs[{i}] ({ns}/{ref.name})"
        if ref.group != "" or ref.kind != "Secret":
            state.unresolved(
                c.R_INVALID_CERTIFICATE_REF,
                f"{where}: unsupported kind {ref.group or 'core'}/{ref.kind}, only core/Secret",
            )
            continue
        if not permitted(
            index,
            # A ListenerSet's listeners need a grant of their own (not the Gateway's).
            from_group=GATEWAY_GROUP if state.owner is None else state.owner.group,
            from_kind=home.kind,
            from_namespace=home.metadata.namespace,
            to_group="",
            to_kind="Secret",
            to_namespace=ns,
            to_name=ref.name,
        ):
            # RefNotPermitted outranks InvalidCertificateRef.
            msg = f"{where}: cross-namespace reference not allowed by any ReferenceGrant"
            if state.refs_reason == c.R_RESOLVED_REFS:
                state.unresolved(c.R_REF_NOT_PERMITTED, msg)
            else:
                state.refs_reason = c.R_REF_NOT_PERMITTED
                state.refs_message = f"{msg}; {state.refs_message}"
            continue
        secret = index.secrets.get((ns, ref.name))
        if secret is None:
            state.unresolved(c.R_INVALID_CERTIFICATE_REF, f"{where}: Secret not found")
            continue
        crt, key = secret.decoded("tls.crt"), secret.decoded("tls.key")
        if secret.type != TLS_SECRET_TYPE:
            problem = f"type is {secret.type!r}, not {TLS_SECRET_TYPE!r}"
        elif not _is_pem(crt, "CERTIFICATE"):
            problem = "tls.crt is missing or not a PEM certificate"
        elif not _is_pem(key, "PRIVATE KEY"):
            problem = "tls.key is missing or not a PEM private key"
        elif (mismatch := certificate_problem(crt or b"", key or b"")) is not None:
            problem = mismatch
        else:
            assert crt is not None and key is not None
            certs.append(
                ModelSecret(f"{name_part(ns)}/{name_part(ref.name)}", crt.decode(), key.decode())
            )
            continue
        state.unresolved(c.R_INVALID_CERTIFICATE_REF, f"{where}: {problem}")
    state.certificates = tuple(certs)


def evaluate_listeners(
    index: Index,
    gateway: Gateway,
    values: Values,
    owner: ListenerSet | None = None,
) -> list[ListenerState]:
    """The listeners of `gateway`, or with `owner` those of a ListenerSet attached to it
    (whose conflicts with the Gateway's are the caller's: `propylon.gatewayapi.
    listenersets`)."""
    states: list[ListenerState] = []
    host_network = values.gateway_api.host_network.enabled
    specs = gateway.spec.listeners if owner is None else owner.spec.listeners
    for spec in specs:
        st = ListenerState(gateway, spec, owner)
        kinds = PROTOCOL_KINDS.get(spec.protocol)
        if kinds is None:
            st.reject(
                c.R_UNSUPPORTED_PROTOCOL,
                f"protocol {spec.protocol} is not supported "
                "(supported: HTTP, HTTPS, TLS, TCP, UDP)",
            )
            kinds = ()
        elif spec.protocol == "TLS" and spec.tls is None:
            st.reject(c.R_UNSUPPORTED_PROTOCOL, "TLS listener has no tls (mode and certificates)")
        if host_network and spec.port <= 1023 and not values.may_bind_privileged_ports:
            st.reject(
                c.R_PORT_UNAVAILABLE,
                f"port {spec.port} is privileged: with gatewayAPI.hostNetwork.enabled, use a "
                "port above 1023 or set envoy.securityContext.capabilities."
                "keepCapNetBindService=true and grant NET_BIND_SERVICE",
            )
        # allowedRoutes.kinds narrows what the protocol supports; unknown kinds are dropped.
        if spec.allowed_routes.kinds:
            valid: list[str] = []
            invalid: list[str] = []
            for rgk in spec.allowed_routes.kinds:
                if rgk.group == GATEWAY_GROUP and rgk.kind in kinds:
                    if rgk.kind not in valid:
                        valid.append(rgk.kind)
                else:
                    invalid.append(f"{rgk.group or 'core'}/{rgk.kind}")
            if invalid:
                st.unresolved(
                    c.R_INVALID_ROUTE_KINDS,
                    f"kinds not supported by a {spec.protocol} listener: {', '.join(invalid)}",
                )
            st.supported_kinds = tuple(valid)
        else:
            st.supported_kinds = kinds
        if st.terminates and st.accepted:
            _resolve_certificates(index, st)
            resolve_client_validation(index, st)
        states.append(st)
    if owner is None:
        _mark_conflicts(states)
    return states


def mark_host_port_conflicts(gateways: Iterable[tuple[bool, list[ListenerState]]]) -> None:
    """hostNetwork: every Gateway's listeners bind the same addresses (the nodes'), so a
    port belongs to the oldest accepted Gateway listening on it, and another Gateway's
    listener on it is Conflicted and not programmed, instead of Envoy refusing a second
    bind of 0.0.0.0:<port>. `gateways`: (accepted, listeners), oldest first."""
    owner: dict[tuple[int, str], ListenerState] = {}
    for accepted, listeners in gateways:
        mine: dict[tuple[int, str], ListenerState] = {}
        for st in listeners:
            if not st.accepted:
                continue
            socket = (st.spec.port, transport(st.spec.protocol))  # UDP 53 and TCP 53 differ
            first = owner.get(socket)
            if first is None:
                mine.setdefault(socket, st)
                continue
            other = first.gateway.metadata
            st.conflicted_reason = c.R_PORT_CONFLICT
            st.conflicted_message = (
                f"gatewayAPI.hostNetwork: port {st.spec.port} of the nodes is taken by "
                f'listener "{first.name}" of Gateway {other.namespace}/{other.name} (older)'
            )
        if accepted:
            for socket, st in mine.items():
                owner.setdefault(socket, st)


def transport(protocol: str) -> str:
    """The socket a listener needs: UDP listeners share port numbers with TCP ones."""
    return "udp" if protocol == "UDP" else "tcp"


def _family(protocol: str) -> str:
    # HTTPS and TLS (passthrough or terminate) share a port (all select by SNI); HTTP
    # and TCP cannot.
    if protocol in ("HTTP", "TCP", "UDP"):
        return protocol.lower()
    return "tls"


def _mark_conflicts(states: list[ListenerState]) -> None:
    by_port: dict[tuple[int, str], list[ListenerState]] = defaultdict(list)
    for st in states:
        if st.accepted:
            by_port[(st.spec.port, transport(st.spec.protocol))].append(st)
    for (port, _), group in by_port.items():
        families = {_family(st.spec.protocol) for st in group}
        if len(families) > 1:
            protos = ", ".join(sorted({st.spec.protocol for st in group}))
            for st in group:
                st.conflicted_reason = c.R_PROTOCOL_CONFLICT
                st.conflicted_message = f"port {port} is used by incompatible protocols: {protos}"
            continue
        seen: dict[str, list[ListenerState]] = defaultdict(list)
        stream = families <= {"tcp", "udp"}
        for st in group:
            # TCP and UDP listeners do not look at hostnames: one per port and protocol.
            seen["*" if stream else st.spec.hostname or "*"].append(st)
        for host, same in seen.items():
            if len(same) > 1 and stream:
                names = ", ".join(s.name for s in same)
                for st in same:
                    st.conflicted_reason = c.R_HOSTNAME_CONFLICT
                    st.conflicted_message = (
                        f"listeners {names} share port {port} and protocol "
                        f"{st.spec.protocol}, which does not match on hostnames"
                    )
            elif len(same) > 1:
                names = ", ".join(s.name for s in same)
                for st in same:
                    st.conflicted_reason = c.R_HOSTNAME_CONFLICT
                    st.conflicted_message = (
                        f"listeners {names} share port {port} and hostname {host}"
                    )
