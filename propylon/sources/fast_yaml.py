"""A fast path for reading one YAML document: the Rust parser `yaml_rs`, used only when
its result is certainly the one PyYAML (`documents._Loader`, YAML 1.1) builds.

PyYAML's composer and resolver run Python code for every node: reading 10 000 routes
(30 000 documents) took ~5 s of a ~15 s start-up; `yaml_rs` builds the same Python
values in C-speed code in ~0.7 s. The two differ where YAML 1.1 and 1.2 differ (plain
`yes`/`on`/`off` are booleans in 1.1, `0777` is octal, `1e3` is a string, `12:30` is
sexagesimal), in strictness (tabs, the `=` scalar, tags it ignores) and in what they
report for bad input. So a document takes this path only when:

- its text is plain printable ASCII without tabs, anchors (`&`), tags (`!`),
  directives or flow collections (`[a]`, `{a: 1}`; the empty `[]` and `{}` are
  fine), and has no number-like token spelled in a way the two read differently (a
  leading zero, sign or underscore before the digits, an exponent), nor enough
  indentation to nest deeper than `documents.MAX_DEPTH`;
- its result is one mapping (a Kubernetes object), not a list, a scalar or nothing;
- no string in it (key or value) is one that PyYAML would have read as something else
  had it been unquoted (`yes`, `12:30`, `<<`, ...): which of the two it was, the result
  does not say, so such a document is left to PyYAML.

Everything else, including every error, goes the usual way (`None` here), so the
messages for bad input are PyYAML's as before. Pure; under the purity contract.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import yaml_rs

# Printable ASCII and line breaks, less anchors/aliases (`&`; an alias without an anchor
# is an error) and tags (`!`): anything else (tabs, which PyYAML rejects as
# indentation, other control characters) is left to PyYAML. Directives are `%` at a
# line start. (bytes.translate and `in`: a regex class scan costs ten times more.)
_PLAIN_BYTES = bytes(b for b in range(0x20, 0x7F) if b not in b"&!") + b"\n\r"
# Number-like tokens that YAML 1.1 and `yaml_rs` read differently: `0777` (octal in
# 1.1), `08`, `0o17`, `_1`, `+.5` (a string in 1.1) when the token starts there, i.e.
# not after a letter, digit, `_` or `.` (checked per match: the regex stays a cheap
# scan); and exponents (`1e3`, `1.0e3`: strings in 1.1). Matching text inside a quoted
# string only sends the document to PyYAML.
_NUMBER_PARTS = re.compile(r"0[0-9o_]|[._][0-9_]")
_EXPONENT = re.compile(r"[0-9._][eE][-+]?[0-9]")
# Nesting: block levels need indentation (or a "- " each); this bounds a document's
# depth well under `documents.MAX_DEPTH` (flow collections are not taken, below).
_DEEP_INDENT = re.compile(r"\n[ ?:-]{36}")


def _token_start(text: str, at: int) -> bool:
    before = at - 1
    if before >= 0 and text[before] in "+-":
        before -= 1
    return before < 0 or not (text[before].isalnum() or text[before] in "_.")


def _plain_text(text: str) -> bool:
    if not text.isascii() or text.startswith("%") or "\n%" in text:
        return False
    if text.encode("ascii").translate(None, _PLAIN_BYTES):
        return False
    if _EXPONENT.search(text) or _DEEP_INDENT.search(text):
        return False
    # Flow collections other than the empty `[]` and `{}`: YAML 1.1 and 1.2 differ
    # there (PyYAML rejects a plain scalar starting with ":" or "?" inside them).
    if text.count("[") != text.count("[]") or text.count("{") != text.count("{}"):
        return False
    return not any(_token_start(text, m.start()) for m in _NUMBER_PARTS.finditer(text))


def resolvable_strings(
    resolvers: Mapping[str | None, list[tuple[str, re.Pattern[str]]]],
) -> re.Pattern[str] | None:
    """A JSON string token whose text PyYAML's resolver would turn into a non-string
    (or reject) when unquoted, from the loader's implicit `resolvers` (anchors
    removed); None if one cannot be embedded (then there is no fast path)."""
    patterns = {regexp for entries in resolvers.values() for _, regexp in entries}
    # Only a string starting with a character some resolver is registered for can be
    # resolved (the lookahead keeps the scan cheap: most strings fail at once).
    firsts = "".join(sorted(k for k in resolvers if k)) + ('"' if "" in resolvers else "")
    alternatives: list[str] = []
    flags = 0
    for pattern in sorted(patterns, key=lambda p: p.pattern):
        text = pattern.pattern.strip()
        if not (text.startswith("^") and text.endswith("$")):
            return None
        alternatives.append(f"(?:{text[1:-1]})")
        flags |= pattern.flags & re.VERBOSE
    head = f'"(?=[{re.escape(firsts)}])'
    return re.compile(head + "(?:" + "|".join(alternatives) + ')"', flags)


def read_document(text: str, resolvable: re.Pattern[str] | None) -> dict[str, Any] | None:
    """The one mapping `text` holds, as PyYAML would build it; None: not known to be
    the same (read it with PyYAML). `resolvable`: from `resolvable_strings`."""
    if resolvable is None or not _plain_text(text):
        return None
    try:
        data = yaml_rs.loads(text, parse_datetime=False)
    except Exception:  # any problem: PyYAML says what it is
        return None
    if type(data) is not dict:
        return None
    try:
        encoded = json.dumps(data, check_circular=False)
    except (TypeError, ValueError, RecursionError):  # e.g. a complex (tuple) key
        return None
    if resolvable.search(encoded):
        return None
    return data
