"""Status conditions and the reasons the Gateway API defines."""

from __future__ import annotations

from typing import Any

from propylon.values import CILIUM_CONTROLLER_NAME

CONTROLLER_NAME = CILIUM_CONTROLLER_NAME

# Condition types.
ACCEPTED = "Accepted"
PROGRAMMED = "Programmed"
RESOLVED_REFS = "ResolvedRefs"
CONFLICTED = "Conflicted"
SUPPORTED_VERSION = "SupportedVersion"
INSECURE_FRONTEND_VALIDATION_MODE = "InsecureFrontendValidationMode"

# Reasons (gateway.networking.k8s.io v1.4).
R_ACCEPTED = "Accepted"
R_PROGRAMMED = "Programmed"
R_RESOLVED_REFS = "ResolvedRefs"
R_NO_CONFLICTS = "NoConflicts"
R_SUPPORTED_VERSION = "SupportedVersion"
INSECURE_FRONTEND_VALIDATION_MODE = "InsecureFrontendValidationMode"
R_INVALID_PARAMETERS = "InvalidParameters"
R_INVALID = "Invalid"
R_LISTENERS_NOT_VALID = "ListenersNotValid"
R_UNSUPPORTED_ADDRESS = "UnsupportedAddress"
R_ADDRESS_NOT_USABLE = "AddressNotUsable"
R_ADDRESS_NOT_ASSIGNED = "AddressNotAssigned"
R_PORT_UNAVAILABLE = "PortUnavailable"
R_UNSUPPORTED_PROTOCOL = "UnsupportedProtocol"
R_HOSTNAME_CONFLICT = "HostnameConflict"
R_PROTOCOL_CONFLICT = "ProtocolConflict"
# Implementation-specific: hostNetwork, the port is another Gateway's on the nodes.
R_PORT_CONFLICT = "PortConflict"
R_INVALID_CERTIFICATE_REF = "InvalidCertificateRef"
R_INVALID_ROUTE_KINDS = "InvalidRouteKinds"
R_REF_NOT_PERMITTED = "RefNotPermitted"
R_NOT_ALLOWED_BY_LISTENERS = "NotAllowedByListeners"
R_NO_MATCHING_PARENT = "NoMatchingParent"
R_NO_MATCHING_LISTENER_HOSTNAME = "NoMatchingListenerHostname"
R_UNSUPPORTED_VALUE = "UnsupportedValue"
R_BACKEND_NOT_FOUND = "BackendNotFound"
R_INVALID_KIND = "InvalidKind"
# Gateway spec.tls (v1.5+): frontend client certificate validation, backend client cert.
R_INVALID_CA_CERTIFICATE_REF = "InvalidCACertificateRef"
R_INVALID_CA_CERTIFICATE_KIND = "InvalidCACertificateKind"
R_NO_VALID_CA_CERTIFICATE = "NoValidCACertificate"
R_CONFIGURATION_CHANGED = "ConfigurationChanged"
R_INVALID_CLIENT_CERTIFICATE_REF = "InvalidClientCertificateRef"
R_LISTENERS_NOT_RESOLVED = "ListenersNotResolved"


def condition(type_: str, ok: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }
