"""Hostname matching and intersection (listener hostname vs route hostnames).

`None` or "*" means "any host". Wildcards ("*.example.com") match one or more labels
in front of the suffix but never the suffix itself."""

from __future__ import annotations

from collections.abc import Iterable


def _is_any(host: str | None) -> bool:
    return host is None or host == "*"


def matches(pattern: str | None, host: str) -> bool:
    """Does the exact `host` match `pattern`?"""
    if _is_any(pattern):
        return True
    assert pattern is not None
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def covers(outer: str | None, inner: str | None) -> bool:
    """True when every host matching `inner` also matches `outer`."""
    if _is_any(outer):
        return True
    if _is_any(inner):
        return False
    assert outer is not None and inner is not None
    if inner.startswith("*."):
        return outer.startswith("*.") and (inner == outer or inner.endswith(outer[1:]))
    return matches(outer, inner)


def intersect(listener: str | None, route_hostnames: Iterable[str]) -> tuple[str, ...]:
    """Hostnames a route serves through a listener; empty when they do not intersect.
    A route without hostnames takes the listener's; "*" stands for any host."""
    routes = list(route_hostnames)
    if not routes:
        return ("*" if _is_any(listener) else str(listener),)
    out: list[str] = []
    for host in routes:
        if covers(listener, host):
            result: str | None = host
        elif covers(host, listener):
            result = listener
        else:
            result = None
        if result is not None and result not in out:
            out.append(result)
    return tuple(out)


def specificity(host: str | None) -> tuple[int, int]:
    """Sort key, most specific first: exact names, then longer wildcards, then any."""
    if _is_any(host):
        return (2, 0)
    assert host is not None
    if host.startswith("*."):
        return (1, -len(host))
    return (0, -len(host))
