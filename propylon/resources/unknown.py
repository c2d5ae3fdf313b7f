"""Fields a document has that Propylon's model of its kind does not: a typo such as
`backendRef` for `backendRefs` would otherwise go unnoticed (the models drop unknown
fields, as the API server prunes them).

Only for the Gateway API kinds, whose models carry every field of the v1.4.1 CRDs
(experimental channel); free-form parts (`retry`, `sessionPersistence`,
`externalAuth`, ...) are not looked into. With the CRD files installed, strict field
validation refuses such objects instead (`propylon.resources.crd`)."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

from pydantic.alias_generators import to_camel

from propylon.resources.base import Resource, Struct
from propylon.resources.common import GATEWAY_GROUP
from propylon.resources.crd import META_FIELDS
from propylon.resources.parse import KINDS

# Fields of the v1.4.1 CRDs that Propylon does not implement (it ignores them, as it
# ignores other features it lacks): known, so not reported as unknown.
_NOT_MODELLED = {
    "GatewaySpec": frozenset({"allowedListeners", "defaultScope", "tls"}),
    "HTTPRouteSpec": frozenset({"useDefaultGateways"}),
    "GRPCRouteSpec": frozenset({"useDefaultGateways"}),
    "TLSRouteSpec": frozenset({"useDefaultGateways"}),
    "StreamRouteSpec": frozenset({"useDefaultGateways"}),
}


@dataclass(frozen=True)
class _Shape:
    """What a model accepts: field alias -> the shape of its value (None: free-form)."""

    fields: Mapping[str, _Value | None]


@dataclass(frozen=True)
class _Value:
    model: type[Struct]
    many: bool  # a list of them


def _value(annotation: Any) -> _Value | None:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _value(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _value(arg)
            if found is not None:
                return found
        return None
    if origin is list or origin is tuple:
        # list[X], or tuple[X, ...] (the records' lists)
        (item, *_) = typing.get_args(annotation) or (Any,)
        inner = _value(item)
        return _Value(inner.model, True) if inner is not None and not inner.many else None
    if isinstance(annotation, type) and issubclass(annotation, Struct):
        return _Value(annotation, False)
    return None


def _shapes(roots: list[type[Struct]]) -> dict[type[Struct], _Shape]:
    shapes: dict[type[Struct], _Shape] = {}
    todo = list(roots)
    while todo:
        model = todo.pop()
        if model in shapes:
            continue
        fields: dict[str, _Value | None] = {}
        for name, info in model.__pydantic_fields__.items():
            value = _value(info.annotation)
            fields[info.alias or to_camel(name)] = value
            if value is not None:
                todo.append(value.model)
        for extra in _NOT_MODELLED.get(model.__name__, ()):
            fields.setdefault(extra, None)
        shapes[model] = _Shape(fields)
    return shapes


# Computed once, at import, from the model classes: constant data (like a compiled
# pattern), not state.
_SHAPES: Mapping[type[Struct], _Shape] = _shapes(
    [m for (api, _), m in KINDS.items() if api.startswith(f"{GATEWAY_GROUP}/")]
)


def unknown_fields(resource: Resource, doc: Mapping[str, Any]) -> list[str]:
    """Paths (`spec.rules[0].backendRef`) in `doc` that the model of `resource` (what
    `doc` parsed into) does not have; empty for kinds outside the Gateway API."""
    shapes = _SHAPES
    shape = shapes.get(type(resource))
    if shape is None:
        return []
    out: list[str] = []
    for key, value in doc.items():
        if key in ("apiVersion", "kind", "status"):
            continue
        if key == "metadata":
            if isinstance(value, Mapping):
                out.extend(f"metadata.{k}" for k in value if k not in META_FIELDS)
            continue
        _walk(shapes, shape, key, value, "", out)
    return out


def _walk(
    shapes: Mapping[type[Struct], _Shape],
    shape: _Shape,
    key: str,
    value: Any,
    parent: str,
    out: list[str],
) -> None:
    # `key`'s path is `parent.key`: made only for the mappings walked into and the
    # fields reported, not for every field (almost all are known).
    fields = shape.fields
    if key not in fields:
        out.append(f"{parent}.{key}" if parent else key)
        return
    inner = fields[key]
    if inner is None:
        return
    sub = shapes[inner.model]
    path = f"{parent}.{key}" if parent else key
    items = value if inner.many and isinstance(value, list) else [value]
    for i, item in enumerate(items):
        if isinstance(item, Mapping):
            here = f"{path}[{i}]" if inner.many else path
            for k, v in item.items():
                _walk(shapes, sub, k, v, here, out)
