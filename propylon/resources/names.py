"""Object metadata as the API server checks it: names, namespaces, labels, annotations.

The rules are Kubernetes' (apimachinery validation): most kinds want a DNS-1123
subdomain name, Namespaces a DNS-1123 label, Services a DNS-1035 label; label and
annotation keys are qualified names; annotations together are at most 256 KiB."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

_LABEL_1123 = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_RE = re.compile(rf"{_LABEL_1123}")
_DNS1123_SUBDOMAIN_RE = re.compile(rf"{_LABEL_1123}(\.{_LABEL_1123})*")
_DNS1035_LABEL_RE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_QUALIFIED_NAME_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE_RE = _QUALIFIED_NAME_RE

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
ANNOTATIONS_MAX_BYTES = 256 * 1024

# Kinds whose names are DNS labels rather than subdomains.
_LABEL_NAMED = {"Namespace": "1123", "Service": "1035"}


def dns1123_label(value: str) -> str | None:
    """Why `value` is not a DNS-1123 label, or None."""
    if len(value) > DNS1123_LABEL_MAX:
        return f"must be no more than {DNS1123_LABEL_MAX} characters"
    if not _DNS1123_LABEL_RE.fullmatch(value):
        return (
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
            "or '-', and must start and end with an alphanumeric character (e.g. 'my-name')"
        )
    return None


def dns1123_subdomain(value: str) -> str | None:
    """Why `value` is not a DNS-1123 subdomain, or None."""
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        return f"must be no more than {DNS1123_SUBDOMAIN_MAX} characters"
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
        return (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
            "characters, '-' or '.', and must start and end with an alphanumeric character "
            "(e.g. 'example.com')"
        )
    return None


def dns1035_label(value: str) -> str | None:
    """Why `value` is not a DNS-1035 label (Service names), or None."""
    if len(value) > DNS1123_LABEL_MAX:
        return f"must be no more than {DNS1123_LABEL_MAX} characters"
    if not _DNS1035_LABEL_RE.fullmatch(value):
        return (
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
            "start with an alphabetic character, and end with an alphanumeric character "
            "(e.g. 'my-name')"
        )
    return None


def qualified_name(value: str) -> str | None:
    """Why `value` is not a label/annotation key (`[prefix/]name`), or None."""
    prefix, slash, name = value.rpartition("/")
    if slash and not prefix:
        return "prefix part must be non-empty"
    if slash:
        why = dns1123_subdomain(prefix)
        if why is not None:
            return f"prefix part {why}"
    if not name:
        return "name part must be non-empty"
    if len(name) > DNS1123_LABEL_MAX:
        return f"name part must be no more than {DNS1123_LABEL_MAX} characters"
    if not _QUALIFIED_NAME_RE.fullmatch(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character (e.g. 'MyName', 'my.name' or "
            "'123-abc')"
        )
    return None


def label_value(value: str) -> str | None:
    if len(value) > DNS1123_LABEL_MAX:
        return f"must be no more than {DNS1123_LABEL_MAX} characters"
    if value and not _LABEL_VALUE_RE.fullmatch(value):
        return (
            "a valid label must be an empty string or consist of alphanumeric characters, "
            "'-', '_' or '.', and must start and end with an alphanumeric character"
        )
    return None


def name_problem(kind: str, name: str) -> str | None:
    """Why `name` cannot name an object of `kind`, or None."""
    rule = _LABEL_NAMED.get(kind)
    if rule == "1035":
        return dns1035_label(name)
    if rule == "1123":
        return dns1123_label(name)
    return dns1123_subdomain(name)


_FAST_NAME = {
    "Service": _DNS1035_LABEL_RE,
    "Namespace": _DNS1123_LABEL_RE,
}
# A label/annotation key whose name part is short enough (the common case) in one match.
_FAST_KEY_RE = re.compile(
    rf"(?:{_LABEL_1123}(?:\.{_LABEL_1123})*/)?(?:[A-Za-z0-9][-A-Za-z0-9_.]{{0,61}})?[A-Za-z0-9]"
)


def metadata_ok(kind: str, meta: Mapping[str, Any], namespace: str) -> bool:
    """True when `metadata_problems` would find nothing, checked the quick way (every
    object is parsed through here); False means: ask `metadata_problems`."""
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        return False
    limit = DNS1123_LABEL_MAX if kind in _FAST_NAME else DNS1123_SUBDOMAIN_MAX
    if len(name) > limit or not _FAST_NAME.get(kind, _DNS1123_SUBDOMAIN_RE).fullmatch(name):
        return False
    if namespace and (
        len(namespace) > DNS1123_LABEL_MAX or not _DNS1123_LABEL_RE.fullmatch(namespace)
    ):
        return False
    labels = meta.get("labels")
    if labels:
        if not isinstance(labels, Mapping):
            return False
        for key, value in labels.items():
            if not isinstance(key, str) or not isinstance(value, str):
                continue
            if len(key) > DNS1123_LABEL_MAX or not _FAST_KEY_RE.fullmatch(key):
                return False
            if len(value) > DNS1123_LABEL_MAX or (value and not _LABEL_VALUE_RE.fullmatch(value)):
                return False
    annotations = meta.get("annotations")
    if annotations and isinstance(annotations, Mapping):
        chars = 0
        for key, value in annotations.items():
            if not isinstance(key, str) or not isinstance(value, str):
                continue
            if len(key) > DNS1123_LABEL_MAX or not _FAST_KEY_RE.fullmatch(key):
                return False
            chars += len(key) + len(value)
        if chars * 4 > ANNOTATIONS_MAX_BYTES:  # UTF-8: at most 4 bytes a character
            return False
    return True


def metadata_problems(
    kind: str, meta: Mapping[str, Any], namespace: str
) -> Iterator[tuple[str, str]]:
    """(field, message) for every way `meta` breaks the API server's metadata rules.

    `namespace` is the effective namespace ("" for cluster-scoped kinds)."""
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        yield "metadata.name", "Required value: name or generateName is required"
    else:
        why = name_problem(kind, name)
        if why is not None:
            yield "metadata.name", f"Invalid value: {name!r}: {why}"
    if namespace:
        why = dns1123_label(namespace)
        if why is not None:
            yield "metadata.namespace", f"Invalid value: {namespace!r}: {why}"
    labels = meta.get("labels")
    if isinstance(labels, Mapping):
        for key, value in labels.items():
            if not isinstance(key, str) or not isinstance(value, str):
                continue  # the typed model reports the wrong type
            why = qualified_name(key)
            if why is not None:
                yield "metadata.labels", f"Invalid value: {key!r}: {why}"
            why = label_value(value)
            if why is not None:
                yield f"metadata.labels.{key}", f"Invalid value: {_short(value)}: {why}"
    annotations = meta.get("annotations")
    if isinstance(annotations, Mapping):
        total = 0
        for key, value in annotations.items():
            if not isinstance(key, str) or not isinstance(value, str):
                continue
            why = qualified_name(key)
            if why is not None:
                yield "metadata.annotations", f"Invalid value: {key!r}: {why}"
            total += len(key.encode()) + len(value.encode())
        if total > ANNOTATIONS_MAX_BYTES:
            yield (
                "metadata.annotations",
                f"Too long: may not be more than {ANNOTATIONS_MAX_BYTES} bytes "
                f"(all annotations together are {total} bytes)",
            )


def _short(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")
