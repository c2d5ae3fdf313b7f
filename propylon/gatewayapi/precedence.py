"""Route precedence within a virtual host, as the Gateway API orders matches:
exact path, then longest prefix, then regular expressions (longest first); then a
method match; then most header matches; then most query param matches; then the oldest
route, then namespace/name; then rule and match order."""

from __future__ import annotations

from propylon.model import PathMatchType, RouteMatch
from propylon.resources import Resource

_PATH_RANK = {PathMatchType.EXACT: 0, PathMatchType.PREFIX: 1, PathMatchType.REGEX: 2}

SortKey = tuple[int, int, int, int, int, bool, str, str, str, int, int]


def sort_key(match: RouteMatch, route: Resource, rule: int, match_index: int) -> SortKey:
    ts = route.metadata.creation_timestamp
    return (
        _PATH_RANK[match.path.type],
        -len(match.path.value),
        0 if match.method else 1,
        -len(match.headers),
        -len(match.query_params),
        ts is None,
        ts or "",
        route.metadata.namespace,
        route.metadata.name,
        rule,
        match_index,
    )
