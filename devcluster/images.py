"""The images the node agent can "pull": an image reference pattern -> a small local image.

There is no container runtime here, so an image is a default entrypoint plus the
executables it contains, all taken from this machine. ``command[0]`` of a container is
resolved by its basename among those executables, as a path inside a real image would be.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devcluster import build


class ImageError(Exception):
    """The image is unknown, or known but its executable is missing (ErrImagePull)."""


class ExecutableNotFound(Exception):
    """command[0] names no executable of the image (the kubelet's RunContainerError)."""


@dataclass(frozen=True)
class Image:
    reference: str
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...] = ()
    executables: Mapping[str, Path] = field(default_factory=dict)

    def argv(self, command: list[str] | None, args: list[str] | None) -> list[str]:
        """The process argv the kubelet would run: command replaces the entrypoint (and
        drops the image's default args), args replace the default args."""
        if command:
            argv = [*command, *(args or [])]
        elif args:
            argv = [*self.entrypoint, *args]
        else:
            argv = [*self.entrypoint, *self.cmd]
        if not argv:
            raise ExecutableNotFound(f"image {self.reference} has no entrypoint and no command")
        return [str(self.executable(argv[0])), *argv[1:]]

    def executable(self, name: str) -> Path:
        path = self.executables.get(os.path.basename(name))
        if path is None:
            known = ", ".join(sorted(self.executables)) or "none"
            raise ExecutableNotFound(
                f'exec: "{name}": executable file not found in image {self.reference}'
                f" (it contains: {known})"
            )
        return path


def echo_basic_binary() -> Path:
    """The conformance echo server built for the dev cluster."""
    from_env = os.environ.get("PDC_ECHO_BASIC")
    if from_env:
        return Path(from_env)
    # Where the dev cluster's build puts it (never built from here: that takes minutes).
    return build.binaries().echo_basic


def _echo_basic(reference: str) -> Image:
    binary = echo_basic_binary()
    if not binary.is_file():
        raise ImageError(
            f"image {reference}: echo-basic binary {binary} does not exist"
            " (python3 -m devcluster build makes it)"
        )
    return Image(reference, entrypoint=(str(binary),), executables={"echo-basic": binary})


def _coredns(reference: str) -> Image:
    # Built with the conformance suite (`ensure_built(conformance=True)`): its UDP backend.
    binary = build.binaries().coredns
    if not binary.is_file():
        raise ImageError(
            f"image {reference}: CoreDNS binary {binary} does not exist"
            " (python3 dev.py conformance builds it)"
        )
    # The real image's entrypoint is /coredns.
    return Image(reference, entrypoint=("/coredns",), executables={"coredns": binary})


def _propylon(reference: str) -> Image:
    # The checkout's venv: the interpreter running the agent is that venv's.
    bindir = Path(sys.prefix) / "bin"
    executables = {name: bindir / name for name in ("propylon", "envoy")}
    return Image(reference, entrypoint=(str(executables["propylon"]),), executables=executables)


# The few tools test pods need (a shell, curl to call the API server with their token),
# taken from this machine: what busybox is in upstream Kubernetes tests.
BUSYBOX_TOOLS = ("sh", "cat", "curl", "echo", "env", "false", "ls", "sleep", "test", "true")


def _busybox(reference: str) -> Image:
    executables = {}
    for tool in BUSYBOX_TOOLS:
        found = shutil.which(tool, path="/usr/local/bin:/usr/bin:/bin")
        if found:
            executables[tool] = Path(found)
    return Image(reference, entrypoint=("sh",), executables=executables)


# Image reference pattern (fnmatch, any registry and tag) -> how to make the image.
IMAGES: tuple[tuple[str, Callable[[str], Image]], ...] = (
    ("*echo-basic*", _echo_basic),
    ("*coredns*", _coredns),
    ("*propylon*", _propylon),
    ("*busybox*", _busybox),
)


def resolve(reference: str) -> Image:
    """The image for a container's ``image`` field; ImageError names it when unknown."""
    for pattern, make in IMAGES:
        if fnmatch.fnmatchcase(reference, pattern):
            return make(reference)
    patterns = ", ".join(pattern for pattern, _ in IMAGES)
    raise ImageError(
        f'image "{reference}" is not known to the dev cluster node (it runs: {patterns})'
    )
