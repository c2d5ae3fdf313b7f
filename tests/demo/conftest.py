"""Helpers for the demo tests: real sockets on 127.0.0.1, deadlines instead of sleeps."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 15.0


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 that is bound but not listening: connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


class DemoProcess:
    """``python -m propylon.demo ...`` as a child process."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def readline(self, timeout: float = DEADLINE) -> str:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        return line.decode()

    async def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = DEADLINE) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        return await asyncio.wait_for(self.proc.wait(), timeout)


class DemoLauncher:
    """Starts ``python -m propylon.demo ARGS`` children; the fixture kills leftovers."""

    def __init__(self) -> None:
        self.started: list[DemoProcess] = []

    async def start(self, *args: str) -> DemoProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "propylon.demo",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        demo = DemoProcess(proc)
        self.started.append(demo)
        return demo


@pytest.fixture
async def demo_cli() -> AsyncIterator[DemoLauncher]:
    """``proc = await demo_cli.start("http-server", "--port", "0")``; killed at the end."""
    launcher = DemoLauncher()
    yield launcher
    for p in launcher.started:
        if p.proc.returncode is None:
            p.proc.kill()
            await p.proc.wait()
