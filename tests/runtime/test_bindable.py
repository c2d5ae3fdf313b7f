"""The bind probe tells addresses this host has from those it has not."""

from __future__ import annotations

from propylon.runtime.bindable import BindProbe, can_bind

# TEST-NET-3 (RFC 5737): documentation only, never assigned to an interface here.
FOREIGN = "203.0.113.7"


def test_loopback_is_bindable_and_a_foreign_address_is_not() -> None:
    assert can_bind("127.10.0.1")
    assert not can_bind(FOREIGN)
    assert not can_bind("not-an-ip")


def test_probe_remembers_unbindable_addresses() -> None:
    probe = BindProbe()
    assert probe.check(["127.10.0.1", FOREIGN]) is True
    assert probe.unbindable == frozenset({FOREIGN})
    assert probe.check([FOREIGN]) is False  # already known: no rebuild needed
    assert probe.refresh() is False  # still unbindable
