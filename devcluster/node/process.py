"""A container as a process: launched in the pod's network namespace and in a mount
namespace of its own where the pod's volumes are bind-mounted at their mountPaths.

The process keeps running if the agent dies (own session, output to a file), and is
recognised again by pid plus its start time in /proc (a reused pid has another).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from devcluster.leftovers import MARK


@dataclass(frozen=True)
class BindMount:
    source: Path
    target: str
    read_only: bool


def start_time(pid: int) -> int | None:
    """Clock ticks since boot when the process started; None if there is no such pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may contain spaces and parentheses: fields follow the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None  # a zombie has exited already
    return int(fields[19])


def is_same_process(pid: int, started: int) -> bool:
    return start_time(pid) == started


FIRST_MOUNT_FD = 10  # above the shell's own; bash takes multi-digit descriptors
# What the image table runs from: the checkout, the venv of this interpreter, and the
# Python it is built on (sys.base_prefix).
IMAGE_ROOTS = tuple(sorted({str(Path(__file__).resolve().parents[2]), sys.prefix, sys.base_prefix}))


def launch_argv(
    argv: list[str], netns: str | None, mounts: list[BindMount], working_dir: str | None
) -> list[str]:
    """nsenter (network) -> unshare (private mount namespace) -> bash (bind mounts) -> exec.
    Each step execs the next, so the pid is the container process's.

    Every source is opened before the first mount and bound from /proc/self/fd, without
    canonicalizing (mount would resolve the link to a path, which a volume mounted
    before may hide): a volume over a folder holding the state dir (an emptyDir at /tmp,
    say) must not hide the sources of the mounts after it."""
    steps = ["set -e"]
    # The images are this machine's files (the checkout, its venv, the Python it runs
    # on): a writable volume over a folder holding them (the chart's emptyDir at /tmp
    # when the checkout is under /tmp) would hide them, where a real container keeps its
    # image. They are bound back on top of such a volume.
    rebind = [
        root
        for root in IMAGE_ROOTS
        if any(_covers(m.target, root) and not m.read_only for m in mounts)
    ]
    hidden = any(_covers(mount.target, argv[0]) for mount in mounts) and not any(
        _covers(root, argv[0]) for root in rebind
    )
    if hidden:
        # A volume is mounted over the executable's folder (e.g. CoreDNS's Corefile at
        # /root, over this host's /root/.cache): open it first, run it by descriptor.
        steps.append('exec 9<"$1"')
    sources = [str(m.source) for m in mounts] + rebind
    fds = [FIRST_MOUNT_FD + i for i in range(len(sources))]
    for fd, source in zip(fds, sources, strict=True):
        steps.append(f"exec {fd}<{shlex.quote(source)}")
    for fd, mount in zip(fds, mounts, strict=False):
        target = shlex.quote(mount.target)
        options = "bind,ro" if mount.read_only else "bind"
        steps.append(f"mkdir -p {target}")
        steps.append(f"mount --no-canonicalize -o {options} /proc/self/fd/{fd} {target}")
    for fd, root in zip(fds[len(mounts) :], rebind, strict=True):
        steps.append(f"mkdir -p {shlex.quote(root)}")
        steps.append(f"mount --no-canonicalize --bind /proc/self/fd/{fd} {shlex.quote(root)}")
    if fds:
        steps.append("exec " + " ".join(f"{fd}<&-" for fd in fds))
    if working_dir:
        steps.append(f"cd {shlex.quote(working_dir)}")
    steps.append('shift; exec /proc/self/fd/9 "$@"' if hidden else 'exec "$@"')
    prefix = ["nsenter", f"--net=/run/netns/{netns}"] if netns else []
    return [
        *prefix,
        "unshare", "--mount", "--propagation", "private", "--",
        "/bin/bash", "-c", "; ".join(steps), "pdc-container", *argv,
    ]  # fmt: skip


def _covers(target: str, path: str) -> bool:
    """Whether a mount at ``target`` hides ``path``."""
    folder = os.path.normpath(target)
    return path == folder or path.startswith(folder.rstrip("/") + "/")


class ContainerProcess:
    """A running container process: ours (we can reap it and read its exit code) or
    adopted from a previous agent (we can only see that it ended)."""

    def __init__(self, pid: int, started: int, popen: subprocess.Popen[bytes] | None) -> None:
        self.pid = pid
        self.started = started
        self._popen = popen

    @classmethod
    def spawn(cls, argv: list[str], env: dict[str, str], log: Path) -> ContainerProcess:
        log.parent.mkdir(parents=True, exist_ok=True)
        if MARK in os.environ:  # the cluster's mark (devcluster/leftovers.py), inherited
            env = {**env, MARK: os.environ[MARK]}
        with log.open("ab") as out:
            popen = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the agent; a group we can signal
                close_fds=True,
            )
        started = start_time(popen.pid)
        return cls(popen.pid, started if started is not None else -1, popen)

    @classmethod
    def adopt(cls, pid: int, started: int) -> ContainerProcess | None:
        return cls(pid, started, None) if is_same_process(pid, started) else None

    async def wait(self) -> int | None:
        """The exit code (128+signal when killed), or None for an adopted process."""
        loop = asyncio.get_running_loop()
        try:
            fd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return self._reap()
        done: asyncio.Future[None] = loop.create_future()
        loop.add_reader(fd, lambda: None if done.done() else done.set_result(None))
        try:
            if self._popen is None and not is_same_process(self.pid, self.started):
                return None
            await done
        finally:
            loop.remove_reader(fd)
            os.close(fd)
        return self._reap()

    def _reap(self) -> int | None:
        if self._popen is None:
            return None
        code = self._popen.wait()
        return 128 - code if code < 0 else code

    def alive(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        return is_same_process(self.pid, self.started)

    def signal(self, signum: signal.Signals) -> None:
        """Signal the process group (the container's own children too)."""
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signum)

    async def stop(self, grace_seconds: float) -> None:
        self.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.wait(), timeout=max(grace_seconds, 0.1))
        except TimeoutError:
            self.signal(signal.SIGKILL)
            await self.wait()
