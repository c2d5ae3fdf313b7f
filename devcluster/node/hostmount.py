"""Leave the mount namespace of ``ip netns exec`` for the launcher's.

``ip netns exec`` gives the agent a mount namespace that is a slave of the host's, so a
network namespace the agent creates with ``ip netns add`` would be visible to the agent
only: not to ``ip netns list`` on the host, nor to ``cluster down``. Joining the parent's
mount namespace (the network namespace stays the node's) puts them where everyone sees
them. Done once at start, while the process is still single-threaded (setns requires it).
"""

from __future__ import annotations

import ctypes
import os

CLONE_NEWNS = 0x00020000


def join_parent_mount_namespace() -> bool:
    """True when the agent moved; False when it already shares its parent's."""
    parent = f"/proc/{os.getppid()}/ns/mnt"
    try:
        if os.stat(parent).st_ino == os.stat("/proc/self/ns/mnt").st_ino:
            return False
        fd = os.open(parent, os.O_RDONLY)
    except PermissionError:
        return False  # e.g. reparented to an init we may not inspect: stay
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, CLONE_NEWNS) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns({parent}): {os.strerror(errno)}")
    finally:
        os.close(fd)
    return True
