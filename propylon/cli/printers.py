"""kubectl-compatible table output for `propylon get`.

- Tables are laid out like kubectl's tabwriter (minimum width 6, padding 3): every
  column but the last is left-aligned and padded to its longest cell + 3 spaces.
- AGE follows kubectl's human-readable durations (`12s`, `5m27s`, `27m`, `5h3m`, `2d7h`,
  `17d`, `2y30d`).
- Columns come from the CRDs' additionalPrinterColumns (Gateway API v1.4.1) and from
  kubectl's built-in printers for core kinds. A CRD column with no value is blank; a
  list value prints as compact JSON (`["a.example.com"]`), as kubectl does.
- Services: standalone Propylon allocates no NodePorts, so PORT(S) reads `8080/TCP`
  (`8080:31832/TCP` only when a Service carries a nodePort); EXTERNAL-IP is the
  LoadBalancer ingress address, `<pending>` before one is assigned, `<none>` for
  other types.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from propylon.clock import parse_timestamp

MIN_WIDTH = 6
PADDING = 3

Doc = Mapping[str, Any]


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = [list(header), *[list(r) for r in rows]]
    if not lines[0]:
        return ""
    columns = len(header)
    widths = [
        max(MIN_WIDTH, max(len(line[i]) for line in lines) + PADDING) for i in range(columns - 1)
    ]
    out = []
    for line in lines:
        cells = [line[i].ljust(widths[i]) for i in range(columns - 1)]
        cells.append(line[-1])
        out.append("".join(cells))
    return "\n".join(out) + "\n"


def human_duration(seconds: float) -> str:
    """kubectl's `HumanDuration`."""
    total = int(seconds)
    if total < -1:
        return "<invalid>"
    if total < 0:
        return "0s"
    if total < 120:
        return f"{total}s"
    minutes = total // 60
    if minutes < 10:
        rest = total % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = total // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = hours // 24 // 365, (hours // 24) % 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def age(doc: Doc, now: datetime) -> str:
    stamp = (doc.get("metadata") or {}).get("creationTimestamp")
    if not isinstance(stamp, str) or not stamp:
        return "<unknown>"
    try:
        created = parse_timestamp(stamp)
    except ValueError:
        return "<unknown>"
    return human_duration((now - created).total_seconds())


# -- cell helpers ------------------------------------------------------------------------


def _get(doc: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(doc, Mapping):
            return None
        doc = doc.get(part)
    return doc


def crd_cell(value: Any) -> str:
    """A CRD printer column cell: blank when absent, JSON for lists and maps."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def condition_status(doc: Doc, type_: str) -> str:
    for cond in _get(doc, "status", "conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == type_:
            return crd_cell(cond.get("status"))
    return ""


def first_address(doc: Doc) -> str:
    addresses = _get(doc, "status", "addresses") or []
    for addr in addresses:
        if isinstance(addr, Mapping) and "value" in addr:
            return crd_cell(addr["value"])
    return ""


def service_external_ip(doc: Doc) -> str:
    spec = _get(doc, "spec") or {}
    kind = spec.get("type") or "ClusterIP"
    external = [str(ip) for ip in spec.get("externalIPs") or []]
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if kind == "LoadBalancer":
        ingress = _get(doc, "status", "loadBalancer", "ingress") or []
        ips = [
            str(i.get("ip") or i.get("hostname"))
            for i in ingress
            if isinstance(i, Mapping) and (i.get("ip") or i.get("hostname"))
        ]
        ips.extend(external)
        return ",".join(ips) if ips else "<pending>"
    if kind == "ExternalName":
        return str(spec.get("externalName") or "<none>")
    return "<unknown>"


def service_ports(doc: Doc) -> str:
    parts = []
    for port in _get(doc, "spec", "ports") or []:
        if not isinstance(port, Mapping):
            continue
        protocol = port.get("protocol") or "TCP"
        node_port = port.get("nodePort")
        if node_port:
            parts.append(f"{port.get('port')}:{node_port}/{protocol}")
        else:
            parts.append(f"{port.get('port')}/{protocol}")
    return ",".join(parts) if parts else "<none>"


def service_selector(doc: Doc) -> str:
    selector = _get(doc, "spec", "selector") or {}
    if not selector:
        return "<none>"
    return ",".join(f"{k}={selector[k]}" for k in sorted(selector))


def _count(*values: Any) -> str:
    return str(sum(len(v) for v in values if isinstance(v, Mapping | list)))


def _endpoints(doc: Doc) -> str:
    addresses = [
        str(a)
        for ep in doc.get("endpoints") or []
        if isinstance(ep, Mapping)
        for a in ep.get("addresses") or []
    ]
    if not addresses:
        return "<unset>"
    shown = ",".join(addresses[:3])
    return shown if len(addresses) <= 3 else f"{shown} + {len(addresses) - 3} more..."


def _slice_ports(doc: Doc) -> str:
    ports = [str(p.get("port")) for p in doc.get("ports") or [] if isinstance(p, Mapping)]
    return ",".join(ports) if ports else "<unset>"


# -- columns per kind ------------------------------------------------------------------

Cell = Callable[[Doc], str]


class Column:
    __slots__ = ("cell", "name", "wide_only")

    def __init__(self, name: str, cell: Cell, *, wide_only: bool = False) -> None:
        self.name = name
        self.cell = cell
        self.wide_only = wide_only


def _name(doc: Doc) -> str:
    return str(_get(doc, "metadata", "name") or "")


_COLUMNS: dict[str, list[Column]] = {
    "GatewayClass": [
        Column("CONTROLLER", lambda d: crd_cell(_get(d, "spec", "controllerName"))),
        Column("ACCEPTED", lambda d: condition_status(d, "Accepted")),
        Column("AGE", lambda d: ""),
        Column("DESCRIPTION", lambda d: crd_cell(_get(d, "spec", "description")), wide_only=True),
    ],
    "Gateway": [
        Column("CLASS", lambda d: crd_cell(_get(d, "spec", "gatewayClassName"))),
        Column("ADDRESS", first_address),
        Column("PROGRAMMED", lambda d: condition_status(d, "Programmed")),
        Column("AGE", lambda d: ""),
    ],
    "ListenerSet": [
        Column("ACCEPTED", lambda d: condition_status(d, "Accepted")),
        Column("PROGRAMMED", lambda d: condition_status(d, "Programmed")),
        Column("AGE", lambda d: ""),
    ],
    "HTTPRoute": [
        Column("HOSTNAMES", lambda d: crd_cell(_get(d, "spec", "hostnames"))),
        Column("AGE", lambda d: ""),
    ],
    "GRPCRoute": [
        Column("HOSTNAMES", lambda d: crd_cell(_get(d, "spec", "hostnames"))),
        Column("AGE", lambda d: ""),
    ],
    "Service": [
        Column("TYPE", lambda d: str(_get(d, "spec", "type") or "ClusterIP")),
        Column("CLUSTER-IP", lambda d: str(_get(d, "spec", "clusterIP") or "<none>")),
        Column("EXTERNAL-IP", service_external_ip),
        Column("PORT(S)", service_ports),
        Column("AGE", lambda d: ""),
        Column("SELECTOR", service_selector, wide_only=True),
    ],
    "Secret": [
        Column("TYPE", lambda d: str(d.get("type") or "Opaque")),
        Column("DATA", lambda d: _count(d.get("data"), d.get("stringData"))),
        Column("AGE", lambda d: ""),
    ],
    "ConfigMap": [
        Column("DATA", lambda d: _count(d.get("data"), d.get("binaryData"))),
        Column("AGE", lambda d: ""),
    ],
    "EndpointSlice": [
        Column("ADDRESSTYPE", lambda d: str(d.get("addressType") or "")),
        Column("PORTS", _slice_ports),
        Column("ENDPOINTS", _endpoints),
        Column("AGE", lambda d: ""),
    ],
}
_COLUMNS["XListenerSet"] = _COLUMNS["ListenerSet"]
_DEFAULT_COLUMNS = [Column("AGE", lambda d: "")]


def table(
    kind: str,
    docs: Sequence[Doc],
    *,
    now: datetime,
    wide: bool = False,
    with_namespace: bool = False,
) -> str:
    columns = [c for c in _COLUMNS.get(kind, _DEFAULT_COLUMNS) if wide or not c.wide_only]
    header = (["NAMESPACE"] if with_namespace else []) + ["NAME"] + [c.name for c in columns]
    rows = []
    for doc in docs:
        row = [str(_get(doc, "metadata", "namespace") or "")] if with_namespace else []
        row.append(_name(doc))
        for column in columns:
            row.append(age(doc, now) if column.name == "AGE" else column.cell(doc))
        rows.append(row)
    return format_table(header, rows)
