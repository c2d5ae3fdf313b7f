from __future__ import annotations

import pytest

from propylon.gatewayapi.hostnames import covers, intersect, matches


@pytest.mark.parametrize(
    ("pattern", "host", "ok"),
    [
        ("*.example.com", "foo.example.com", True),
        ("*.example.com", "a.b.example.com", True),
        ("*.example.com", "example.com", False),
        ("foo.example.com", "foo.example.com", True),
        (None, "anything", True),
    ],
)
def test_matches(pattern: str | None, host: str, ok: bool) -> None:
    assert matches(pattern, host) is ok


@pytest.mark.parametrize(
    ("listener", "route", "expected"),
    [
        (None, [], ("*",)),
        ("foo.com", [], ("foo.com",)),
        (None, ["a.com"], ("a.com",)),
        ("*.example.com", ["foo.example.com", "bar.org"], ("foo.example.com",)),
        ("foo.example.com", ["*.example.com"], ("foo.example.com",)),
        ("*.example.com", ["*.foo.example.com"], ("*.foo.example.com",)),
        ("*.foo.example.com", ["*.example.com"], ("*.foo.example.com",)),
        ("very.specific.com", ["other.com"], ()),
        ("*.example.com", ["example.com"], ()),
    ],
)
def test_intersect(listener: str | None, route: list[str], expected: tuple[str, ...]) -> None:
    assert intersect(listener, route) == expected


def test_covers() -> None:
    assert covers("*.example.com", "*.foo.example.com")
    assert not covers("*.foo.example.com", "*.example.com")
    assert covers(None, "*.x.com") and not covers("*.x.com", None)
