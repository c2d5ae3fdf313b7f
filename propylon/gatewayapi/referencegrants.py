"""ReferenceGrant checks for cross-namespace references."""

from __future__ import annotations

from propylon.gatewayapi.index import Index


def permitted(
    index: Index,
    *,
    from_group: str,
    from_kind: str,
    from_namespace: str,
    to_group: str,
    to_kind: str,
    to_namespace: str,
    to_name: str,
) -> bool:
    """May an object in `from_namespace` refer to `to_namespace/to_name`?"""
    if from_namespace == to_namespace:
        return True
    for grant in index.reference_grants.get(to_namespace, []):
        from_ok = any(
            f.group == from_group and f.kind == from_kind and f.namespace == from_namespace
            for f in grant.spec.from_
        )
        to_ok = any(
            t.group == to_group and t.kind == to_kind and (not t.name or t.name == to_name)
            for t in grant.spec.to
        )
        if from_ok and to_ok:
            return True
    return False
