"""Gateway API semantics, pure: `build(Inputs) -> BuildResult`.

Class acceptance, listener validation, address allocation, route attachment, hostname
intersection, ReferenceGrants, backend resolution; the result is every status, the
generated `cilium-gateway-<name>` Services, Gateway addresses and the data-plane `Model`.
No I/O, no clock, no global state: the same `Inputs` always give the same result."""

from propylon.gatewayapi.build import build
from propylon.gatewayapi.conditions import CONTROLLER_NAME
from propylon.gatewayapi.incremental import Builder
from propylon.gatewayapi.inputs import BuildResult, Inputs
from propylon.store.diagnostics import Diagnostic

__all__ = ["CONTROLLER_NAME", "BuildResult", "Builder", "Diagnostic", "Inputs", "build"]
