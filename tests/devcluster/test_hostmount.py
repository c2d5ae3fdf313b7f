"""Finding the mount namespace `ip netns exec` copied the agent's from."""

from __future__ import annotations

from devcluster.node.hostmount import master_peer_group

HOST = """\
45 27 254:0 /run/netns /run/netns rw,relatime shared:1 - ext4 /dev/vda rw
"""
UNDER_IP_NETNS_EXEC = """\
93 72 254:0 /run/netns /run/netns rw,relatime - ext4 /dev/vda rw
94 93 0:40 / /run/netns rw,relatime master:2 - tmpfs tmpfs rw
95 94 0:4 net:[4026532241] /run/netns/pdc-node-1 rw master:3 - nsfs nsfs rw
"""


def test_host_namespace_has_no_master() -> None:
    assert master_peer_group(HOST) is None


def test_slave_copy_names_the_topmost_run_netns_master() -> None:
    assert master_peer_group(UNDER_IP_NETNS_EXEC) == "2"


def test_no_run_netns_mount_at_all() -> None:
    assert master_peer_group("22 1 0:21 / /proc rw shared:5 - proc proc rw\n") is None
