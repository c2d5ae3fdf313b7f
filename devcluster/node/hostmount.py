"""Leave the mount namespace of ``ip netns exec`` for the one it was copied from.

``ip netns exec`` gives the agent a mount namespace that is a slave of the launcher's, so a
network namespace the agent made with ``ip netns add`` would be seen by the agent only:
not by ``ip netns list`` of the launcher, nor by ``cluster down``, nor by the next agent
after a restart. So the agent joins the namespace its /run/netns receives mounts from
(the "master" peer group in /proc/self/mountinfo): any process whose /run/netns is in
that group lives there. Its network namespace stays the node's. Done once at start,
while the process is still single-threaded (setns requires it).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from pathlib import Path

CLONE_NEWNS = 0x00020000
NETNS_DIR = "/run/netns"


def _netns_mount_tags(mountinfo: str) -> list[str]:
    """Optional fields (shared:N, master:N) of the topmost /run/netns mount."""
    tags: list[str] = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 6 and fields[4] == NETNS_DIR:
            tags = fields[6 : fields.index("-")]
    return tags


def master_peer_group(mountinfo: str) -> str | None:
    for tag in _netns_mount_tags(mountinfo):
        if tag.startswith("master:"):
            return tag.removeprefix("master:")
    return None


def _processes_in_group(group: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if f"shared:{group}" in _netns_mount_tags((entry / "mountinfo").read_text()):
                found.append(int(entry.name))
    return found


def join_launcher_mount_namespace() -> bool:
    """True when the agent moved; False when its /run/netns is not a slave's."""
    group = master_peer_group(Path("/proc/self/mountinfo").read_text())
    if group is None:
        return False
    for pid in _processes_in_group(group):
        try:
            fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
        except OSError:
            continue  # gone, or not ours to enter
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.setns(fd, CLONE_NEWNS) == 0:
                return True
        finally:
            os.close(fd)
    raise RuntimeError(
        f"{NETNS_DIR} is a slave mount (peer group {group}) but no process in its master "
        "mount namespace could be entered; start the agent with nsenter --net instead"
    )
