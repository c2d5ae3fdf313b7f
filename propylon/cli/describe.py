"""`propylon describe`: kubectl-describe-like text for one object.

The layout follows kubectl's generic describer (keys in Title Case, sorted, values
aligned per block, two spaces of indentation per level) with two changes that make
Gateway API objects easier to read: `conditions` print as a table (Type, Status, Reason,
Message, ObservedGeneration, LastTransitionTime) wherever they occur (the Gateway, each
listener, each route parent), and list items start with their identifying field (`Name`,
`Parent Ref`). Secret values are never printed, only their sizes.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from typing import Any

INDENT = "  "
_ACRONYMS = {
    "api": "API",
    "uid": "UID",
    "ip": "IP",
    "ips": "IPs",
    "url": "URL",
    "tls": "TLS",
    "tcp": "TCP",
    "udp": "UDP",
    "http": "HTTP",
    "https": "HTTPS",
    "grpc": "GRPC",
    "cidr": "CIDR",
    "id": "ID",
    "sni": "SNI",
    "ca": "CA",
}
_FIRST_KEYS = ("name", "parentRef", "type")
_CONDITION_COLUMNS = (
    ("Type", "type"),
    ("Status", "status"),
    ("Reason", "reason"),
    ("Message", "message"),
    ("ObservedGeneration", "observedGeneration"),
    ("LastTransitionTime", "lastTransitionTime"),
)


def label_for(key: str) -> str:
    """`gatewayClassName` -> `Gateway Class Name`, `uid` -> `UID`."""
    pattern = r"[A-Z]{2,}s(?![a-z])|[A-Z]+(?=[A-Z][a-z]|\d|$)|[A-Z]?[a-z]+|[A-Z]+|\d+"
    words = re.findall(pattern, key) or [key]
    out = []
    for word in words:
        lowered = word.lower()
        out.append(_ACRONYMS.get(lowered, word[:1].upper() + word[1:]))
    return " ".join(out)


class _Lines:
    """Lines of `(prefix, value)`; consecutive lines with a value are aligned together,
    like kubectl's tabwriter does for `Key:\\tvalue`."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str | None]] = []

    def key(self, depth: int, label: str, value: str | None = None) -> None:
        self.items.append((f"{INDENT * depth}{label}:", value))

    def raw(self, text: str) -> None:
        self.items.append((text, None))

    def render(self) -> str:
        out: list[str] = []
        i = 0
        while i < len(self.items):
            if self.items[i][1] is None:
                out.append(self.items[i][0])
                i += 1
                continue
            j = i
            while j < len(self.items) and self.items[j][1] is not None:
                j += 1
            width = max(len(prefix) for prefix, _ in self.items[i:j]) + 2
            for prefix, value in self.items[i:j]:
                out.append(f"{prefix.ljust(width)}{value}")
            i = j
        return "\n".join(out) + "\n"


def _scalar(value: Any) -> str:
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _ordered_keys(mapping: Mapping[str, Any]) -> list[str]:
    first = [k for k in _FIRST_KEYS if k in mapping and not isinstance(mapping[k], list)][:1]
    return first + sorted(k for k in mapping if k not in first)


def _conditions_table(lines: _Lines, depth: int, conditions: Sequence[Any]) -> None:
    rows = [[h for h, _ in _CONDITION_COLUMNS], ["-" * len(h) for h, _ in _CONDITION_COLUMNS]]
    for cond in conditions:
        if isinstance(cond, Mapping):
            rows.append(
                [
                    _scalar(cond.get(k)) if cond.get(k) is not None else ""
                    for _, k in _CONDITION_COLUMNS
                ]
            )
    widths = [max(len(r[i]) for r in rows) + 2 for i in range(len(_CONDITION_COLUMNS) - 1)]
    for row in rows:
        text = "".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])) + row[-1]
        lines.raw(f"{INDENT * depth}{text}".rstrip())


def _value(lines: _Lines, depth: int, label: str, value: Any) -> None:
    if not isinstance(value, (Mapping, list)):
        lines.key(depth, label, _scalar(value))
        return
    if not value:
        lines.key(depth, label, "<none>")
        return
    lines.key(depth, label)
    if isinstance(value, Mapping):
        _mapping(lines, depth + 1, value)
    elif label == "Conditions":
        _conditions_table(lines, depth + 1, value)
    else:
        for item in value:
            if isinstance(item, Mapping):
                _mapping(lines, depth + 1, item)
            elif isinstance(item, list):
                _value(lines, depth + 1, "-", item)
            else:
                lines.raw(f"{INDENT * (depth + 1)}{_scalar(item)}")


def _mapping(lines: _Lines, depth: int, mapping: Mapping[str, Any]) -> None:
    for key in _ordered_keys(mapping):
        _value(lines, depth, label_for(key), mapping[key])


def _pairs(lines: _Lines, label: str, values: Mapping[str, Any] | None, sep: str) -> None:
    if not values:
        lines.key(0, label, "<none>")
        return
    for i, key in enumerate(sorted(values)):
        text = f"{key}{sep}{values[key]}"
        if i == 0:
            lines.key(0, label, text)
        else:
            lines.items.append(("", text))


def _secret_sizes(data: Mapping[str, Any]) -> dict[str, str]:
    sizes = {}
    for key, value in data.items():
        try:
            size = len(base64.b64decode(str(value), validate=True))
        except (binascii.Error, ValueError):
            size = len(str(value))
        sizes[key] = f"{size} bytes"
    return sizes


def describe(doc: Mapping[str, Any]) -> str:
    lines = _Lines()
    meta = doc.get("metadata") or {}
    lines.key(0, "Name", _scalar(meta.get("name")))
    if meta.get("namespace"):
        lines.key(0, "Namespace", _scalar(meta.get("namespace")))
    _pairs(lines, "Labels", meta.get("labels"), "=")
    _pairs(lines, "Annotations", meta.get("annotations"), ": ")
    lines.key(0, "API Version", _scalar(doc.get("apiVersion")))
    lines.key(0, "Kind", _scalar(doc.get("kind")))
    rest_meta = {
        k: v
        for k, v in meta.items()
        if k not in ("name", "namespace", "labels", "annotations") and v not in (None, "", {}, [])
    }
    if rest_meta:
        _value(lines, 0, "Metadata", rest_meta)
    body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata", "status")}
    if doc.get("kind") == "Secret":
        for field in ("data", "stringData"):
            if isinstance(body.get(field), Mapping):
                body[field] = _secret_sizes(body[field])
    for key in (["spec"] if "spec" in body else []) + sorted(k for k in body if k != "spec"):
        _value(lines, 0, label_for(key), body[key])
    if "status" in doc:
        _value(lines, 0, "Status", doc["status"])
    return lines.render()
