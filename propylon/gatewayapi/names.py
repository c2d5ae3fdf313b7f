"""Parts of generated names (clusters, listeners, secrets)."""

from __future__ import annotations


def name_part(value: str) -> str:
    """`value` with the separators of generated names (":" and "/") and "%" itself
    percent-encoded: generated names stay injective whatever the input (valid
    Kubernetes names contain none of them, so they read as before)."""
    if not any(ch in value for ch in ":/%"):
        return value
    return value.replace("%", "%25").replace(":", "%3A").replace("/", "%2F")
