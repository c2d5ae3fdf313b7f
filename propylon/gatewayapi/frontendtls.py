"""Gateway `spec.tls.frontend`: client certificate validation on HTTPS listeners.

- The validation for an HTTPS listener is `perPort` for its port, else `default`; it
  applies to every HTTPS listener on that port (a ListenerSet's included, since they
  are the Gateway's ports). Other protocols ignore it.
- `caCertificateRefs` must be ConfigMaps (`group: ""`) holding a PEM `ca.crt` (Core), or
  Secrets with a PEM `ca.crt` (implementation-specific, as cert-manager writes them);
  any other kind: `ResolvedRefs=False/InvalidCACertificateKind`; missing, or without a
  PEM `ca.crt`: `InvalidCACertificateRef`; another namespace without a ReferenceGrant
  (from the Gateway to the ConfigMap or Secret): `RefNotPermitted`.
- When no ref is usable the listener is `Accepted=False/NoValidCACertificate` and not
  programmed: no connection is served without the validation the Gateway asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from propylon.gatewayapi import conditions as c
from propylon.gatewayapi.index import Index
from propylon.gatewayapi.referencegrants import permitted
from propylon.model import ClientValidation
from propylon.resources import GATEWAY_GROUP

if TYPE_CHECKING:
    from propylon.gatewayapi.listeners import ListenerState


def _pem_certificates(text: str | None) -> bool:
    return (
        bool(text)
        and "-----BEGIN CERTIFICATE-----" in (text or "")
        and ("-----END CERTIFICATE-----" in (text or ""))
    )


def resolve_client_validation(index: Index, state: ListenerState) -> None:
    """Sets `state.client_validation` (or rejects the listener) for an HTTPS listener."""
    tls = state.gateway.spec.tls
    frontend = tls.frontend if tls is not None else None
    if frontend is None or state.spec.protocol != "HTTPS":
        return
    validation = frontend.for_port(state.spec.port)
    if validation is None:
        return
    gw = state.gateway
    home = gw.metadata.namespace
    pems: list[str] = []
    problems: list[tuple[str, str]] = []
    for i, ref in enumerate(validation.ca_certificate_refs):
        ns = ref.namespace or home
        where = f"spec.tls.frontend caCertificateRefs[{i}] ({ns}/{ref.name})"
        if ref.group != "" or ref.kind not in ("ConfigMap", "Secret"):
            problems.append(
                (
                    c.R_INVALID_CA_CERTIFICATE_KIND,
                    f"{where}: unsupported kind {ref.group or 'core'}/{ref.kind}, "
                    "only core/ConfigMap or core/Secret",
                )
            )
            continue
        if not permitted(
            index,
            from_group=GATEWAY_GROUP,
            from_kind="Gateway",
            from_namespace=home,
            to_group="",
            to_kind=ref.kind,
            to_namespace=ns,
            to_name=ref.name,
        ):
            problems.append(
                (
                    c.R_REF_NOT_PERMITTED,
                    f"{where}: cross-namespace reference not allowed by any ReferenceGrant",
                )
            )
            continue
        pem: str | None = None
        if ref.kind == "ConfigMap":
            cm = index.config_maps.get((ns, ref.name))
            found = cm is not None
            pem = cm.data.get("ca.crt") if cm is not None else None
        else:
            secret = index.secrets.get((ns, ref.name))
            found = secret is not None
            raw = secret.decoded("ca.crt") if secret is not None else None
            pem = raw.decode("utf-8", errors="replace") if raw is not None else None
        if not found:
            problems.append((c.R_INVALID_CA_CERTIFICATE_REF, f"{where}: {ref.kind} not found"))
            continue
        if not _pem_certificates(pem):
            problems.append(
                (c.R_INVALID_CA_CERTIFICATE_REF, f"{where}: no PEM certificate in ca.crt")
            )
            continue
        assert pem is not None
        pems.append(pem.strip() + "\n")
    for reason, message in problems:
        state.unresolved(reason, message)
    if not pems:
        state.reject(
            c.R_NO_VALID_CA_CERTIFICATE,
            "none of the client CA certificates of spec.tls.frontend "
            f"(port {state.spec.port}) is usable",
        )
        return
    state.client_validation = ClientValidation(
        "".join(pems), insecure_fallback=validation.mode == "AllowInsecureFallback"
    )
