"""The CEL side of CRD validation: Kubernetes' escaping of property names and the
functions of Kubernetes' CEL libraries that the Gateway API rules use (`split`, ...),
on top of the `common-expression-language` library."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any

# Property names CEL cannot spell as they are: Kubernetes escapes them (so the rules
# say `self.__namespace__`).
_KEYWORDS_TEXT = (
    "true false null in as break const continue else for function if import let "
    "loop package namespace return var void while "
)
_CEL_KEYWORDS = frozenset(_KEYWORDS_TEXT.split())


def escape_property(name: str) -> str:
    """A property name as CEL rules see it (Kubernetes' escaping)."""
    if name in _CEL_KEYWORDS:
        return f"__{name}__"
    return (
        name.replace("__", "__underscores__")
        .replace(".", "__dot__")
        .replace("-", "__dash__")
        .replace("/", "__slash__")
    )


def _split(s: str, sep: str, limit: int = -1) -> list[str]:
    if limit == 0:
        return []
    if sep == "":
        parts = list(s)
        return parts if limit < 0 else [*parts[: limit - 1], "".join(parts[limit - 1 :])]
    return s.split(sep) if limit < 0 else s.split(sep, limit - 1)


def _is_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
    except ValueError:
        return False
    return True


def _is_cidr(s: str) -> bool:
    try:
        ipaddress.ip_network(s, strict=False)
    except ValueError:
        return False
    return "/" in s


def _lower_ascii(s: str) -> str:
    return "".join(ch.lower() if ch.isascii() else ch for ch in s)


def _upper_ascii(s: str) -> str:
    return "".join(ch.upper() if ch.isascii() else ch for ch in s)


def _trim(s: str) -> str:
    return s.strip()


def _cel_join(items: list[str], sep: str = "") -> str:
    return sep.join(items)


KUBERNETES_FUNCTIONS: Mapping[str, Callable[..., Any]] = {
    "split": _split,
    "isIP": _is_ip,
    "isCIDR": _is_cidr,
    "lowerAscii": _lower_ascii,
    "upperAscii": _upper_ascii,
    "trim": _trim,
    "join": _cel_join,
}


def evaluate_rule(source: str, self_value: Any, old_self: Any = None) -> Any:
    """One CEL rule on one value, with the functions and escaping validation uses (the
    value's property names must already be escaped): for tests and debugging."""
    variables = {"self": self_value}
    if old_self is not None:
        variables["oldSelf"] = old_self
    cel = load_cel()
    return cel.compile(source).execute(cel.Context(variables, dict(KUBERNETES_FUNCTIONS)))


def load_cel() -> Any:
    """The CEL library, imported when a CRD's rules are first compiled: it brings a
    command line's worth of modules (prompt_toolkit, rich, typer), ~20 MiB of RSS and
    a second of start-up under load, which `propylon run` without CRD files never
    needs."""
    import cel

    return cel
