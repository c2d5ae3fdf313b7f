"""One evaluation of the pure pipeline: snapshot -> Gateway API -> model -> xDS.

Shared by `propylon run` (every reconcile), `propylon validate` and `propylon translate`,
so all three see the same statuses, the same problems and the same Envoy configuration.
No I/O here: the callers read files and push the result.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from propylon import gatewayapi, policy
from propylon.clock import EPOCH, format_timestamp
from propylon.envoy import Translator, XdsResources
from propylon.gatewayapi.classconfig import refused_configs
from propylon.model import ProxyOptions
from propylon.resources.meta import ObjectKey
from propylon.runtime.options import DEFAULT_POOL
from propylon.store import ChangeSet, Diagnostic, Origin, Snapshot, Store, error
from propylon.values import Values

# Conditions that report a problem when True (all others do when False).
NEGATIVE_POLARITY = frozenset({"Conflicted", "OverlappingTLSConfig", "PartiallyInvalid"})


@dataclass(frozen=True)
class Evaluation:
    snapshot: Snapshot
    result: gatewayapi.BuildResult
    resources: XdsResources
    diagnostics: tuple[Diagnostic, ...]  # file problems, build warnings, False conditions


def proxy_options(values: Values) -> ProxyOptions:
    return ProxyOptions(
        xff_num_trusted_hops=values.gateway_api.xff_num_trusted_hops,
        bind_all=values.gateway_api.host_network.enabled,
        proxy_protocol=values.gateway_api.enable_proxy_protocol,
        alpn=values.gateway_api.enable_alpn,
    )


def previous_addresses(statuses: Mapping[ObjectKey, Mapping[str, Any]]) -> dict[ObjectKey, str]:
    """Gateway -> the address its last status showed, so allocation stays stable."""
    out: dict[ObjectKey, str] = {}
    for key, status in statuses.items():
        if key.kind != "Gateway":
            continue
        for address in status.get("addresses") or ():
            value = address.get("value") if isinstance(address, Mapping) else None
            if isinstance(value, str) and value:
                out[key] = value
                break
    return out


def evaluate(
    snapshot: Snapshot,
    changeset: ChangeSet,
    values: Values,
    *,
    previous: Mapping[ObjectKey, str] | None = None,
    default_pool: tuple[str, ...] = DEFAULT_POOL,
    unbindable: frozenset[str] = frozenset(),
    translator: Translator | None = None,
    builder: gatewayapi.Builder | None = None,
    conditions: ConditionDiagnostics | None = None,
    withheld: Mapping[ObjectKey, str] | None = None,
    withheld_changed: frozenset[ObjectKey] = frozenset(),
    rejected: str | None = None,
    node_ports: tuple[tuple[str, int], ...] = (),
    assign_addresses: bool = True,
    kubernetes: bool = False,
    policy_engine: policy.PolicyEngine | None = None,
) -> Evaluation:
    """`builder`, `translator` and `conditions` carry memory from one evaluation to the
    next (the runtime keeps one of each, fed every snapshot in order); without them
    everything is computed from scratch, with the same result.

    `withheld`: objects Envoy rejected (key -> its message; see `runtime.isolation`):
    left out of the build, their status says why. `withheld_changed`: the keys that
    entered or left it since the previous evaluation. `rejected`: Envoy's message for a
    rejection no object could be blamed for: every Gateway is then not Programmed."""
    objects = snapshot.resources()
    if withheld:
        objects = {k: v for k, v in objects.items() if k not in withheld}
    inputs = gatewayapi.Inputs(
        objects=objects,
        values=values,
        previous_addresses=previous or {},
        default_pool=default_pool,
        unbindable_addresses=unbindable,
        assign_addresses=assign_addresses,
        kubernetes=kubernetes,
        refused_class_configs=refused_configs(
            changeset.diagnostics,
            lambda key: snapshot.get(key) is not None,
            lambda key: _generation(snapshot, key),
        ),
    )
    changed = snapshot.changed
    if changed is not None and withheld_changed:
        changed = frozenset(changed) | withheld_changed
    result = builder.build(inputs, changed) if builder is not None else gatewayapi.build(inputs)
    if withheld:
        result = _with_rejections(result, snapshot, withheld)
    if rejected:
        result = _not_programmed(result, rejected)
    options = dataclasses.replace(proxy_options(values), node_ports=node_ports)
    # Network policy's verdicts join the model (no policy object: the model as it is).
    model = (policy_engine or policy.PolicyEngine()).apply(result.model, objects, changed)
    if model is not result.model:
        result = dataclasses.replace(result, model=model)
    resources = (translator or Translator()).translate(model, options)
    status_problems = (conditions or ConditionDiagnostics())(
        result.statuses, snapshot, changed=result.changed, since=result.since
    )
    if inputs.refused_class_configs:
        # A refused config's Accepted=False repeats the source's diagnostic: once is enough.
        refused = {str(key) for key in inputs.refused_class_configs}
        status_problems = [d for d in status_problems if d.object not in refused]
    diagnostics = [
        *changeset.diagnostics,
        *_build_diagnostics(result.diagnostics, snapshot),
        *status_problems,
    ]
    return Evaluation(snapshot, result, resources, tuple(diagnostics))


def _with_rejections(
    result: gatewayapi.BuildResult, snapshot: Snapshot, withheld: Mapping[ObjectKey, str]
) -> gatewayapi.BuildResult:
    """Statuses for the objects withheld from Envoy: a route is not accepted by any of
    its parents, a Gateway is not programmed; each with Envoy's message."""
    statuses = dict(result.statuses)
    for key, message in withheld.items():
        stored = snapshot.get(key)
        if stored is None:
            continue
        resource: Any = stored.resource
        generation = resource.metadata.generation
        text = f"Envoy rejected the configuration made from this object: {message}"
        if key.kind == "Gateway":
            statuses[key] = {
                "conditions": [
                    _condition("Accepted", True, "Accepted", "Gateway is accepted", generation),
                    _condition("Programmed", False, "Invalid", text, generation),
                ]
            }
            continue
        parents = []
        for ref in resource.spec.parent_refs:
            parents.append(
                {
                    "parentRef": ref.model_dump(by_alias=True, exclude_none=True, mode="json"),
                    "controllerName": gatewayapi.CONTROLLER_NAME,
                    "conditions": [
                        _condition("Accepted", False, "UnsupportedValue", text, generation),
                        _condition("Programmed", False, "Invalid", text, generation),
                    ],
                }
            )
        statuses[key] = {"parents": parents}
    return dataclasses.replace(result, statuses=statuses, changed=None, since=None)


def _not_programmed(result: gatewayapi.BuildResult, message: str) -> gatewayapi.BuildResult:
    """Every Gateway `Programmed=False`: Envoy rejected the latest configuration."""
    statuses = dict(result.statuses)
    text = f"Envoy rejected the latest configuration: {message}"
    for key, status in result.statuses.items():
        if key.kind != "Gateway":
            continue
        conditions = [
            {**c, "status": "False", "reason": "Invalid", "message": text}
            if c.get("type") == "Programmed"
            else c
            for c in status.get("conditions") or ()
        ]
        statuses[key] = {**status, "conditions": conditions}
    return dataclasses.replace(result, statuses=statuses, changed=None, since=None)


def _condition(type_: str, ok: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def evaluate_once(changeset: ChangeSet, values: Values) -> Evaluation:
    """Evaluate files once with a fixed clock (validate, translate): output depends on
    the files only."""
    counter = itertools.count(1)
    store = Store(
        now=lambda: format_timestamp(EPOCH),
        new_uid=lambda: f"00000000-0000-4000-8000-{next(counter):012d}",
    )
    return evaluate(store.apply(changeset), changeset, values)


def _generation(snapshot: Snapshot, key: ObjectKey) -> int:
    """The stored object's generation (its last good version's, for a document now
    refused); 1 for one never stored."""
    stored = snapshot.get(key)
    return int(stored.resource.metadata.generation) if stored is not None else 1


def _origin(snapshot: Snapshot, key: ObjectKey) -> Origin | None:
    stored = snapshot.get(key)
    return stored.origin if stored is not None else None


def _build_diagnostics(items: Iterable[Diagnostic], snapshot: Snapshot) -> list[Diagnostic]:
    """The Builder's diagnostics, placed in the file and document of their object."""
    out = []
    for item in items:
        origin = _origin(snapshot, ObjectKey.parse(item.object)) if item.object else None
        if origin is not None and item.file is None:
            item = replace(item, file=origin.file, document=origin.document)
        out.append(item)
    return out


def _describe_ref(ref: Mapping[str, Any]) -> str:
    namespace = ref.get("namespace")
    text = f"{ref.get('kind', 'Gateway')} {namespace + '/' if namespace else ''}{ref.get('name')}"
    if ref.get("sectionName"):
        text += f" section {ref['sectionName']}"
    if ref.get("port"):
        text += f" port {ref['port']}"
    return text


def _bad_conditions(status: Mapping[str, Any], path: str, where: str) -> Iterable[tuple[str, str]]:
    for cond in status.get("conditions") or ():
        if not isinstance(cond, Mapping):
            continue
        type_, value = str(cond.get("type")), cond.get("status")
        bad = value == "True" if type_ in NEGATIVE_POLARITY else value == "False"
        if bad:
            text = f"{where}{type_}={value} ({cond.get('reason', '')})"
            if cond.get("message"):
                text += f": {cond['message']}"
            yield f"{path}.conditions", text
    for i, listener in enumerate(status.get("listeners") or ()):
        if isinstance(listener, Mapping):
            name = listener.get("name", i)
            yield from _bad_conditions(listener, f"{path}.listeners[{i}]", f"listener {name}: ")
    for i, parent in enumerate(status.get("parents") or ()):
        if isinstance(parent, Mapping):
            ref = parent.get("parentRef") or {}
            yield from _bad_conditions(
                parent, f"{path}.parents[{i}]", f"parent {_describe_ref(ref)}: "
            )


def condition_diagnostics(
    statuses: Mapping[ObjectKey, Mapping[str, Any]], snapshot: Snapshot
) -> list[Diagnostic]:
    """An error for each condition that says something is wrong, located at the file and
    object it is about."""
    out = []
    for key in sorted(statuses):
        out.extend(_status_diagnostics(key, statuses[key], _origin(snapshot, key)))
    return out


def _status_diagnostics(
    key: ObjectKey, status: Mapping[str, Any], origin: Origin | None
) -> list[Diagnostic]:
    return [
        error(
            message,
            file=origin.file if origin else None,
            document=origin.document if origin else None,
            object=str(key),
            field=field,
        )
        for field, message in _bad_conditions(status, "status", "")
    ]


class ConditionDiagnostics:
    """`condition_diagnostics` with memory: a status that is the same object as in the
    previous call (the incremental Builder reuses unchanged routes' statuses), from the
    same origin, gives the same diagnostics without being walked again. With `changed`
    (the keys whose status may differ from `since`, the statuses of the previous call)
    only those keys, and those with problems, are looked at."""

    def __init__(self) -> None:
        self._memo: dict[ObjectKey, tuple[Mapping[str, Any], Origin | None, list[Diagnostic]]] = {}
        self._seen: Mapping[ObjectKey, Mapping[str, Any]] | None = None
        self._bad: list[ObjectKey] = []  # sorted: keys with diagnostics

    def __call__(
        self,
        statuses: Mapping[ObjectKey, Mapping[str, Any]],
        snapshot: Snapshot,
        *,
        changed: Iterable[ObjectKey] | None = None,
        since: Mapping[ObjectKey, Mapping[str, Any]] | None = None,
    ) -> list[Diagnostic]:
        previous = self._memo
        if changed is None or since is None or since is not self._seen:
            memo: dict[ObjectKey, tuple[Mapping[str, Any], Origin | None, list[Diagnostic]]] = {}
            keys: Iterable[ObjectKey] = statuses
        else:
            memo = previous  # patched in place
            keys = {*changed, *self._bad}
        for key in keys:
            status = statuses.get(key)
            if status is None:
                memo.pop(key, None)
                continue
            origin = _origin(snapshot, key)
            entry = previous.get(key)
            if entry is None or entry[0] is not status or entry[1] != origin:
                entry = (status, origin, _status_diagnostics(key, status, origin))
            memo[key] = entry
        self._memo, self._seen = memo, statuses
        if keys is statuses:
            self._bad = sorted(k for k, e in memo.items() if e[2])
        else:
            self._bad = sorted({*self._bad, *(k for k in keys if k in memo and memo[k][2])})
            self._bad = [k for k in self._bad if k in memo and memo[k][2]]
        out: list[Diagnostic] = []
        for key in self._bad:
            out.extend(memo[key][2])
        return out
