"""Diagnostics: problems found while reading or building configuration.

A `Diagnostic` names the file (and document), the object and the field it is about, so a
user can go straight to the offending line. It lives in `propylon.store` (pure, below
every stage) so that sources, the Gateway API core and the CLI can all produce it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem. `document` is the 0-based index of the YAML document in `file`
    (the same counting as `items[0]` / `rules[0]` in field paths); `line` is 1-based."""

    severity: Severity
    file: str | None
    document: int | None
    object: str | None  # e.g. "HTTPRoute default/x"
    field: str | None  # e.g. "spec.rules[0].backendRefs[0].port"
    message: str
    line: int | None = None

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def location(self) -> str:
        """`FILE#doc`, `FILE:line` or `FILE`; empty when the problem is not in a file."""
        if self.file is None:
            return ""
        if self.line is not None:
            return f"{self.file}:{self.line}"
        if self.document is not None:
            return f"{self.file}#{self.document}"
        return self.file

    def __str__(self) -> str:
        parts = [p for p in (self.location(), self.object, self.field) if p]
        parts.append(self.message)
        return ": ".join(parts)

    def sort_key(self) -> tuple[str, int, int, str, str, str]:
        return (
            self.file or "",
            self.document if self.document is not None else -1,
            self.line if self.line is not None else -1,
            self.object or "",
            self.field or "",
            self.message,
        )


def error(
    message: str,
    *,
    file: str | None = None,
    document: int | None = None,
    object: str | None = None,
    field: str | None = None,
    line: int | None = None,
) -> Diagnostic:
    return Diagnostic(Severity.ERROR, file, document, object, field, message, line)


def warning(
    message: str,
    *,
    file: str | None = None,
    document: int | None = None,
    object: str | None = None,
    field: str | None = None,
    line: int | None = None,
) -> Diagnostic:
    return Diagnostic(Severity.WARNING, file, document, object, field, message, line)
