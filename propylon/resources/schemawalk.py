"""The walk of one object against a CRD's structural schema: types, formats, patterns,
enums, lengths, list limits and list-type uniqueness, defaults applied first, and the
`x-kubernetes-validations` rules (evaluated once the schema walk is done)."""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import re2

from propylon.resources.celfunctions import KUBERNETES_FUNCTIONS, escape_property
from propylon.resources.celfunctions import load_cel as _cel

# RFC 3339 date-time, as OpenAPI's format (a syntax check: the pure core reads no clock
# and keeps to no calendar library).
_DATE_TIME_RE = re2.compile(
    r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt ]([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)"
    r"(\.\d+)?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)"
)

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


class CRDError(ValueError):
    """A CustomResourceDefinition document that cannot be installed."""


@dataclass(frozen=True)
class FieldProblem:
    """One validation error: `field` is a path (`spec.rules[0].matches`)."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


@dataclass(frozen=True)
class Rule:
    source: str
    program: Any  # cel.Program
    message: str
    field_path: str | None
    reason: str | None


@dataclass
class Node:
    schema: Mapping[str, Any]
    type: str | None
    properties: dict[str, Node] = field(default_factory=dict)
    items: Node | None = None
    additional: Node | bool | None = None
    rules: list[Rule] = field(default_factory=list)
    pattern: Any = None  # compiled re2 pattern
    preserve_unknown: bool = False
    int_or_string: bool = False


def compile_schema(schema: Mapping[str, Any], where: str) -> Node:
    node = Node(
        schema=schema,
        type=schema.get("type"),
        preserve_unknown=bool(schema.get("x-kubernetes-preserve-unknown-fields")),
        int_or_string=bool(schema.get("x-kubernetes-int-or-string")),
    )
    for name, sub in (schema.get("properties") or {}).items():
        node.properties[name] = compile_schema(sub, f"{where}.{name}")
    if isinstance(schema.get("items"), Mapping):
        node.items = compile_schema(schema["items"], f"{where}[]")
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        node.additional = compile_schema(extra, f"{where}{{}}")
    elif isinstance(extra, bool):
        node.additional = extra
    if "pattern" in schema:
        try:
            node.pattern = re2.compile(schema["pattern"], _RE2_OPTIONS)
        except re2.error as exc:
            raise CRDError(f"{where}: pattern {schema['pattern']!r}: {exc}") from None
    for rule in schema.get("x-kubernetes-validations") or ():
        source = rule.get("rule", "")
        if "oldSelf" in source:
            continue  # transition rule: no old object here
        try:
            program = _cel().compile(source)
        except Exception as exc:  # the library raises its own error types
            raise CRDError(f"{where}: CEL rule {source!r} does not compile: {exc}") from None
        node.rules.append(
            Rule(
                source=source,
                program=program,
                message=rule.get("message") or f"failed rule: {source}",
                field_path=rule.get("fieldPath"),
                reason=rule.get("reason"),
            )
        )
    return node


class Walk:
    def __init__(self) -> None:
        self.problems: list[FieldProblem] = []
        self.unknown: list[str] = []
        # Errors that make rules unsafe to evaluate (wrong type, missing required field,
        # unsupported enum value, too long, too many): with any of them, the API server
        # evaluates no CEL rule of the object, and says so. Others do not stop them.
        self.blocking = 0
        self.rules: list[tuple[Any, Node, str]] = []  # evaluated once the walk is done

    def block(self, path: str, message: str) -> None:
        self.blocking += 1
        self.fail(path, message)

    def run_rules(self) -> None:
        if not self.rules:
            return
        if self.blocking:
            self.fail(
                "",
                "the CEL validation rules were not evaluated because of the errors above; "
                "correct them to complete validation",
            )
            return
        for cel_value, node, path in self.rules:
            self._rules(cel_value, node, path)

    def fail(self, path: str, message: str) -> None:
        self.problems.append(FieldProblem(path, message))

    def value(self, value: Any, node: Node, path: str) -> tuple[bool, Any]:
        """Validate `value` (defaults applied to it in place); (valid, CEL value)."""
        schema = node.schema
        if value is None:
            if schema.get("nullable"):
                return True, None
            self.block(
                path,
                f'Invalid value: "null": {path} in body must be of type '
                f'{node.type or "object"}: "null"',
            )
            return False, None
        cel_value: Any = value
        if node.int_or_string:
            if not isinstance(value, int | str) or isinstance(value, bool):
                self.block(
                    path,
                    f"Invalid value: {_show(value)}: {path} in body must be of "
                    "type integer or string",
                )
                return False, None
        elif node.type is not None and not _is_type(value, node.type):
            self.block(
                path,
                f'Invalid value: "{_json_type(value)}": {path} in body must '
                f'be of type {node.type}: "{_json_type(value)}"',
            )
            return False, None
        if isinstance(value, dict):
            cel_value = self._object(value, node, path)
        elif isinstance(value, list):
            cel_value = self._array(value, node, path)
        else:
            self._scalar(value, node, path)
        self._values(value, schema, path)
        if node.rules:
            self.rules.append((cel_value, node, path))
        return True, cel_value

    def _object(self, value: dict[str, Any], node: Node, path: str) -> dict[str, Any]:
        schema = node.schema
        for name in schema.get("required") or ():
            if name not in value:
                self.block(_join(path, name), "Required value")
        for name, sub in node.properties.items():
            if name not in value and "default" in sub.schema:
                value[name] = copy.deepcopy(sub.schema["default"])
        n = len(value)
        if "maxProperties" in schema and n > schema["maxProperties"]:
            self.block(path, f"Too many: {n}: must have at most {schema['maxProperties']} items")
        if "minProperties" in schema and n < schema["minProperties"]:
            self.fail(
                path, f"Invalid value: {n}: must have at least {schema['minProperties']} properties"
            )
        out: dict[str, Any] = {}
        for name, item in value.items():
            here = _join(path, name)
            known = node.properties.get(name)
            if known is not None:
                _, out[escape_property(name)] = self.value(item, known, here)
            elif isinstance(node.additional, Node):
                _, out[name] = self.value(item, node.additional, f"{path}[{name}]")
            elif node.additional is True or node.preserve_unknown:
                out[name] = item
            else:
                self.unknown.append(here)
        return out

    def _array(self, value: list[Any], node: Node, path: str) -> list[Any]:
        schema = node.schema
        n = len(value)
        if "maxItems" in schema and n > schema["maxItems"]:
            self.block(path, f"Too many: {n}: must have at most {schema['maxItems']} items")
        if "minItems" in schema and n < schema["minItems"]:
            self.fail(
                path,
                f"Invalid value: {n}: {path} in body should have at least "
                f"{schema['minItems']} items",
            )
        out = []
        for i, item in enumerate(value):
            if node.items is None:
                out.append(item)
            else:
                out.append(self.value(item, node.items, f"{path}[{i}]")[1])
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "set":
            seen: list[Any] = []
            for i, item in enumerate(value):
                if item in seen:
                    self.fail(f"{path}[{i}]", f"Duplicate value: {_show(item)}")
                seen.append(item)
        elif list_type == "map":
            keys = schema.get("x-kubernetes-list-map-keys") or []
            seen_keys: set[tuple[Any, ...]] = set()
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    continue
                k = tuple(_freeze(item.get(name)) for name in keys)
                if k in seen_keys:
                    shown = ", ".join(f'"{name}":{_show(item.get(name))}' for name in keys)
                    self.fail(
                        f"{path}[{i}]", f"Duplicate value: map[string]interface {{}}{{{shown}}}"
                    )
                seen_keys.add(k)
        return out

    def _scalar(self, value: Any, node: Node, path: str) -> None:
        schema = node.schema
        if isinstance(value, str):
            n = len(value)
            if "maxLength" in schema and n > schema["maxLength"]:
                self.block(path, f"Too long: may not be more than {schema['maxLength']} bytes")
            if "minLength" in schema and n < schema["minLength"]:
                self.fail(
                    path,
                    f"Invalid value: {_show(value)}: {path} in body should be at "
                    f"least {schema['minLength']} chars long",
                )
            if node.pattern is not None and not node.pattern.search(value):
                self.fail(
                    path,
                    f"Invalid value: {_show(value)}: {path} in body should match "
                    f"'{schema['pattern']}'",
                )
            fmt = schema.get("format")
            if fmt and not _format_ok(fmt, value):
                self.fail(
                    path,
                    f"Invalid value: {_show(value)}: {path} in body must be of "
                    f"type {fmt}: {_show(value)}",
                )
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if "maximum" in schema:
                top = schema["maximum"]
                if value > top or (schema.get("exclusiveMaximum") and value == top):
                    self.fail(
                        path,
                        f"Invalid value: {value}: {path} in body should be less "
                        f"than or equal to {top}",
                    )
            if "minimum" in schema:
                low = schema["minimum"]
                if value < low or (schema.get("exclusiveMinimum") and value == low):
                    self.fail(
                        path,
                        f"Invalid value: {value}: {path} in body should be greater "
                        f"than or equal to {low}",
                    )

    def _values(self, value: Any, schema: Mapping[str, Any], path: str) -> None:
        """enum and the value-only combinators (oneOf, anyOf, allOf, not)."""
        enum = schema.get("enum")
        if enum is not None and value not in enum:
            shown = ", ".join(_show(v) for v in enum)
            self.block(path, f"Unsupported value: {_show(value)}: supported values: {shown}")
        one_of = schema.get("oneOf")
        if one_of and sum(1 for s in one_of if _conforms(value, s)) != 1:
            self.fail(
                path,
                f"Invalid value: {_show(value)}: {path} in body must validate one "
                "and only one schema (oneOf)",
            )
        any_of = schema.get("anyOf")
        if any_of and not any(_conforms(value, s) for s in any_of):
            self.fail(
                path,
                f"Invalid value: {_show(value)}: {path} in body must validate at "
                "least one schema (anyOf)",
            )
        for sub in schema.get("allOf") or ():
            if not _conforms(value, sub):
                self.fail(
                    path,
                    f"Invalid value: {_show(value)}: {path} in body must validate "
                    "all the schemas (allOf)",
                )
        if "not" in schema and _conforms(value, schema["not"]):
            self.fail(
                path,
                f"Invalid value: {_show(value)}: {path} in body must not validate the schema (not)",
            )

    def _rules(self, cel_value: Any, node: Node, path: str) -> None:
        context = _cel().Context({"self": cel_value}, dict(KUBERNETES_FUNCTIONS))
        for rule in node.rules:
            where = path + (rule.field_path or "")
            try:
                result = rule.program.execute(context)
            except Exception as exc:  # evaluation errors are the library's own types
                self.fail(
                    where,
                    f'Invalid value: "object": rule {rule.source!r} could not be evaluated: {exc}',
                )
                continue
            if result is not True:
                self.fail(where, f'Invalid value: "{_json_type(cel_value)}": {rule.message}')


def _conforms(value: Any, schema: Mapping[str, Any]) -> bool:
    """Whether `value` passes the value validations of a combinator branch."""
    walk = Walk()
    node = compile_schema(schema, "")
    walk._values(value, schema, "")
    if isinstance(value, dict):
        for name, sub in node.properties.items():
            if name in value and not _conforms(value[name], sub.schema):
                return False
    elif node.type is None or _is_type(value, node.type):
        walk._scalar(value, node, "")
    else:
        return False
    return not walk.problems


def _is_type(value: Any, type_: str) -> bool:
    if type_ == "object":
        return isinstance(value, dict)
    if type_ == "array":
        return isinstance(value, list)
    if type_ == "string":
        return isinstance(value, str)
    if type_ == "boolean":
        return isinstance(value, bool)
    if type_ == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_ == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _format_ok(fmt: str, value: str) -> bool:
    if fmt == "ipv4":
        try:
            return ipaddress.ip_address(value).version == 4
        except ValueError:
            return False
    if fmt == "ipv6":
        try:
            return ipaddress.ip_address(value).version == 6
        except ValueError:
            return False
    if fmt == "date-time":
        return _DATE_TIME_RE.fullmatch(value) is not None
    return True  # int32/int64 are checked as integers; other formats are not enforced


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _show(value: Any) -> str:
    if isinstance(value, str):
        text = value if len(value) <= 80 else value[:77] + "..."
        return '"' + text.replace('"', '\\"') + '"'
    return str(value)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
