"""CiliumGatewayClassConfig status, as Cilium 1.20's operator writes it: one condition,
`Accepted`, with the config's generation (`observedGeneration`); True, reason `Accepted`,
"Valid GatewayClassConfig", for every config, referenced by a GatewayClass or not.

Cilium never sets it False (its reconciler validates nothing yet: a TODO there, and its
False branch reuses reason `Accepted`). Here a config that a source refused (a field the
API server's schema lets through but Propylon cannot use, such as a source range that is
not a CIDR; or, standalone, a document that fails validation) gets `Accepted=False`,
reason `Invalid`, with the field and the problem. Refused objects never reach the build,
so the shells (the pipeline standalone, the operator in Kubernetes) find them in the
sources' diagnostics (`refused_configs`) and hand them to the build
(`Inputs.refused_class_configs`), which also names the problem in the status of a
GatewayClass whose parametersRef points there."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from propylon.gatewayapi import conditions as c
from propylon.resources import ObjectKey
from propylon.store.diagnostics import Diagnostic

KIND = "CiliumGatewayClassConfig"
VALID = "Valid GatewayClassConfig"
R_INVALID = "Invalid"


def config_status(generation: int, problem: str | None = None) -> dict[str, Any]:
    """The status of a config: accepted, or not with `problem` (what is wrong)."""
    if problem is None:
        accepted = c.condition(c.ACCEPTED, True, c.R_ACCEPTED, VALID, generation)
    else:
        message = f"Invalid GatewayClassConfig: {problem}"
        accepted = c.condition(c.ACCEPTED, False, R_INVALID, message, generation)
    return {"conditions": [accepted]}


def refused_configs(
    diagnostics: Iterable[Diagnostic],
    loaded: Callable[[ObjectKey], bool],
    generation: Callable[[ObjectKey], int],
) -> dict[ObjectKey, tuple[int, str]]:
    """The configs a source refused, as `Inputs.refused_class_configs` takes them:
    key -> (generation, what is wrong). Refused: an error about the object, or any
    diagnostic about one that is not loaded (Kubernetes mode leaves a refused object
    out with a warning). A warning about a loaded config (an unknown field) is not a
    refusal."""
    out: dict[ObjectKey, tuple[int, str]] = {}
    for item in diagnostics:
        if not item.object or not item.object.startswith(KIND + " "):
            continue
        key = ObjectKey.parse(item.object)
        if key in out or not (item.is_error or not loaded(key)):
            continue
        problem = f"{item.field}: {item.message}" if item.field else item.message
        out[key] = (generation(key), problem)
    return out
