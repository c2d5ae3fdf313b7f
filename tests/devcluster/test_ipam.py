"""Pod IP allocation from the podCIDR, kept across agent restarts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from devcluster.node.ipam import PodIPAllocator, PoolExhausted


def test_next_free_address_skips_the_gateway_and_is_stable_per_pod(tmp_path: Path) -> None:
    ipam = PodIPAllocator("198.18.17.0/24", tmp_path / "ipam.json")
    assert str(ipam.gateway) == "198.18.17.1"
    assert str(ipam.allocate("pod-a")) == "198.18.17.2"
    assert str(ipam.allocate("pod-b")) == "198.18.17.3"
    assert str(ipam.allocate("pod-a")) == "198.18.17.2"
    ipam.release("pod-a")
    assert str(ipam.allocate("pod-c")) == "198.18.17.2"


def test_allocations_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "ipam.json"
    first = PodIPAllocator("198.18.18.0/24", path)
    first.allocate("pod-a")
    first.allocate("pod-b")
    again = PodIPAllocator("198.18.18.0/24", path)
    assert again.allocations() == {"pod-a": "198.18.18.2", "pod-b": "198.18.18.3"}
    assert str(again.allocate("pod-c")) == "198.18.18.4"


def test_exhausted_pool_says_which(tmp_path: Path) -> None:
    ipam = PodIPAllocator("198.18.17.0/30", tmp_path / "ipam.json")  # hosts .1 (gw) and .2
    ipam.allocate("only")
    with pytest.raises(PoolExhausted, match=re.escape("198.18.17.0/30")):
        ipam.allocate("one-too-many")
