"""Helm-style values: `--values FILE` (YAML) merged with `--set a.b=c` overrides.

`--set` follows helm's `strvals` syntax, reimplemented here:

- `a.b=c` sets a nested key; several assignments may be joined with commas
  (`a=1,b.c=2`); `\\,` and `\\.` escape a comma or a dot in a key or value.
- `a[0]=x` / `a[1].b=y` index a list (grown with nulls as needed); `a={x,y}` sets a list.
- Values are typed like helm does: `true`/`false` (any case) -> bool, `null` -> removes the
  key, an integer without a leading zero (or `0`) -> int, anything else -> string
  (`1.5`, `007` and `0x10` stay strings).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from propylon.values import Values

log = logging.getLogger("propylon.values")

_INDEX = re.compile(r"^(.*)\[(\d+)\]$")


class ValuesError(ValueError):
    pass


def typed_value(text: str) -> Any:
    lowered = text.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    if lowered == "null":
        return None
    if text == "0":
        return 0
    if text and text[0] != "0" and re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    return text


def _split(text: str, sep: str, *, braces: bool = False) -> list[str]:
    """Split on unescaped `sep` (outside `{...}` when `braces`), keeping escapes."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if braces and ch == "{":
            depth += 1
        elif braces and ch == "}":
            depth = max(0, depth - 1)
        if ch == sep and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _value(raw: str) -> Any:
    if raw.startswith("{") and raw.endswith("}"):
        inner = raw[1:-1]
        if not inner:
            return []
        return [typed_value(_unescape(item)) for item in _split(inner, ",")]
    return typed_value(_unescape(raw))


def _set_path(root: dict[str, Any], path: list[str], value: Any, assignment: str) -> None:
    node: Any = root
    for position, segment in enumerate(path):
        last = position == len(path) - 1
        indexes: list[int] = []
        name = segment
        while (match := _INDEX.match(name)) is not None:
            name = match.group(1)
            indexes.insert(0, int(match.group(2)))
        name = _unescape(name)
        if not name:
            raise ValuesError(f"--set {assignment!r}: empty key")
        if not isinstance(node, dict):
            raise ValuesError(f"--set {assignment!r}: {name!r} is inside a non-mapping value")
        if not indexes:
            if last:
                if value is None:
                    node.pop(name, None)
                else:
                    node[name] = value
                return
            child = node.get(name)
            if not isinstance(child, dict):
                child = {}
                node[name] = child
            node = child
            continue
        container = node.get(name)
        if not isinstance(container, list):
            container = []
            node[name] = container
        for depth, index in enumerate(indexes):
            if index > 10_000:
                raise ValuesError(f"--set {assignment!r}: index {index} is too large")
            while len(container) <= index:
                container.append(None)
            final_index = depth == len(indexes) - 1
            if final_index and last:
                container[index] = value
                return
            if final_index:
                if not isinstance(container[index], dict):
                    container[index] = {}
                node = container[index]
            else:
                if not isinstance(container[index], list):
                    container[index] = []
                container = container[index]


def parse_set(assignments: Iterable[str], into: dict[str, Any] | None = None) -> dict[str, Any]:
    """Apply `--set` strings, in order, to `into` (a new dict by default)."""
    root: dict[str, Any] = into if into is not None else {}
    for assignment in assignments:
        for part in _split(assignment, ",", braces=True):
            if not part:
                continue
            key_value = _split(part, "=")
            if len(key_value) < 2:
                raise ValuesError(f"--set {assignment!r}: {part!r} is not of the form key=value")
            key = key_value[0]
            raw = "=".join(key_value[1:])
            _set_path(root, _split(key, "."), _value(raw), assignment)
    return root


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_values(files: Iterable[Path | str] = (), sets: Iterable[str] = ()) -> Values:
    """`Values` from YAML files (later ones win) and `--set` overrides (applied last)."""
    merged: dict[str, Any] = {}
    for file in files:
        try:
            data = yaml.safe_load(Path(file).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValuesError(f"{file}: cannot read: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise ValuesError(f"{file}: invalid YAML: {exc}") from None
        if data is None:
            continue
        if not isinstance(data, dict):
            raise ValuesError(f"{file}: values must be a mapping")
        merged = deep_merge(merged, data)
    merged = parse_set(sets, merged)
    for path in unknown_keys(merged):
        log.warning("values: unknown key %s is ignored (a typo?)", path)
    try:
        return Values.model_validate(merged)
    except ValidationError as exc:
        raise ValuesError(f"invalid values: {describe_errors(exc)}") from None


# Sections of the values that Propylon models completely: a key there that it does not
# know is a typo (elsewhere, e.g. a Cilium values file's other keys, it is just unused).
CHECKED_SECTIONS = ("gatewayAPI",)


def unknown_keys(data: Mapping[str, Any]) -> list[str]:
    """Dotted paths of keys in `CHECKED_SECTIONS` that the values model does not have."""
    out: list[str] = []
    fields = Values.model_fields
    for section in CHECKED_SECTIONS:
        field = next((f for n, f in fields.items() if (f.alias or n) == section), None)
        value = data.get(section)
        if field is not None and isinstance(value, Mapping):
            _walk(value, field.annotation, section, out)
    return out


def _walk(data: Mapping[str, Any], model: Any, prefix: str, out: list[str]) -> None:
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return
    by_key = {(f.alias or n): f for n, f in model.model_fields.items()}
    by_key.update({n: f for n, f in model.model_fields.items()})
    for key, value in data.items():
        field = by_key.get(str(key))
        if field is None:
            out.append(f"{prefix}.{key}")
        elif isinstance(value, Mapping):
            _walk(value, field.annotation, f"{prefix}.{key}", out)


def describe_errors(exc: ValidationError) -> str:
    """One line per problem: the key path as in the values file, what is wrong, and
    the value given."""
    lines = []
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"])
        lines.append(f"{path}: {error['msg']} (got {error.get('input')!r})")
    return "; ".join(lines)
