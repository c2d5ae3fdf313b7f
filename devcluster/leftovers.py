"""Finding every process a dev cluster started, whatever its node agent remembers.

Each process the cluster starts carries `PDC_CLUSTER=<run folder>` in its environment:
the control plane and node agents (cluster.py), and every container a node agent
launches (node/process.py), whose own children inherit it. `cluster down` stops the
components in order, then stops whatever still carries the mark: a pod of an agent
that was SIGKILLed and never came back, one that an agent lost track of, a child that
left its process group. The mark outlives the pod's network namespace, which a process
keeps alive (unnamed) after `ip netns del`.

Processes are also found by network namespace (a node's or a pod's, by its name under
/run/netns), for a process started without the mark (by an older agent).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

MARK = "PDC_CLUSTER"
NETNS_DIR = Path("/run/netns")


def mark(folder: Path) -> dict[str, str]:
    """The environment entry that marks a process as started by the cluster at `folder`."""
    return {MARK: str(folder)}


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def marked_processes(folder: Path) -> list[int]:
    """Live processes carrying the mark of the cluster at `folder` (not this one)."""
    needle = f"{MARK}={folder}".encode()
    found = []
    for pid in _pids():
        if pid == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue  # gone, or a kernel thread
        if needle in environ.split(b"\0"):
            found.append(pid)
    return found


def processes_in_netns(names: Iterable[str]) -> list[int]:
    """Live processes whose network namespace is one of `names` (under /run/netns)."""
    wanted = set()
    for name in names:
        with contextlib.suppress(OSError):
            info = os.stat(NETNS_DIR / name)
            wanted.add((info.st_dev, info.st_ino))
    if not wanted:
        return []
    found = []
    for pid in _pids():
        if pid == os.getpid():
            continue
        with contextlib.suppress(OSError):
            info = os.stat(f"/proc/{pid}/ns/net")
            if (info.st_dev, info.st_ino) in wanted:
                found.append(pid)
    return found


def _start_time(pid: int) -> str | None:
    """The process's start time (a reused pid has another); None once it is gone or a
    zombie (exited: nothing left to stop)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] == "Z" else fields[19]


def stop(pids: Iterable[int], grace: float = 5.0) -> list[int]:
    """SIGTERM each process, SIGKILL those still there after `grace` seconds; return the
    pids that were running."""
    running = {pid: started for pid in pids if (started := _start_time(pid)) is not None}

    def alive() -> list[int]:
        return [pid for pid, started in running.items() if _start_time(pid) == started]

    for signum, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pid in alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        deadline = time.monotonic() + wait
        while alive() and time.monotonic() < deadline:
            time.sleep(0.05)
    return sorted(running)
