"""Addresses the host cannot bind: skipped by allocation, AddressNotUsable when asked for."""

from __future__ import annotations

from typing import Any

from test_build import run

from propylon.resources import ObjectKey


def _programmed(result: Any, name: str) -> dict[str, Any]:
    status = result.statuses[ObjectKey("Gateway", "default", name)]
    return next(c for c in status["conditions"] if c["type"] == "Programmed")


def test_allocation_skips_unbindable_addresses() -> None:
    result = run("", unbindable_addresses=frozenset({"127.10.0.1"}))
    assert list(result.addresses.values()) == ["127.10.0.2"]
    assert _programmed(result, "gw")["status"] == "True"


def test_requested_unbindable_address_is_not_usable() -> None:
    result = run(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: wants}
spec:
  gatewayClassName: cilium
  addresses: [{type: IPAddress, value: 127.10.0.140}]
  listeners: [{name: http, port: 80, protocol: HTTP}]
""",
        unbindable_addresses=frozenset({"127.10.0.140"}),
    )
    cond = _programmed(result, "wants")
    assert (cond["status"], cond["reason"]) == ("False", "AddressNotUsable")
    assert "127.10.0.140 cannot be bound" in cond["message"]
    # The other Gateway is unaffected, and only it reaches the data plane.
    assert _programmed(result, "gw")["status"] == "True"
    assert [li.name for li in result.model.listeners] == ["default/gw/80"]
