"""Readiness and liveness probes, sent from the node's network namespace to the pod's IP
(as the kubelet does), exec probes run inside the container's namespaces."""

from __future__ import annotations

import asyncio
from typing import Any

Obj = dict[str, Any]


def _port(port: object, container: Obj) -> int:
    if isinstance(port, int):
        return port
    for declared in container.get("ports", []):
        if declared.get("name") == port:
            return int(declared["containerPort"])
    return int(str(port))


async def _http_get(host: str, port: int, path: str, headers: list[Obj], timeout: float) -> bool:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        lines = [
            f"GET {path or '/'} HTTP/1.1",
            f"Host: {host}:{port}",
            "User-Agent: kube-probe/1.36",
            "Connection: close",
        ]
        lines += [f"{h['name']}: {h['value']}" for h in headers]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout)
        parts = status_line.split()
        return len(parts) >= 2 and 200 <= int(parts[1]) < 400
    finally:
        writer.close()


async def _tcp(host: str, port: int, timeout: float) -> bool:
    _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    writer.close()
    return True


async def _exec(command: list[str], pid: int, timeout: float) -> bool:
    process = await asyncio.create_subprocess_exec(
        "nsenter",
        f"--target={pid}",
        "--net",
        "--mount",
        "--",
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        return await asyncio.wait_for(process.wait(), timeout) == 0
    except TimeoutError:
        process.kill()
        await process.wait()
        return False


async def run_probe(probe: Obj, container: Obj, pod_ip: str, pid: int) -> bool:
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        if "httpGet" in probe:
            get = probe["httpGet"]
            host = get.get("host") or pod_ip
            port = _port(get["port"], container)
            return await _http_get(
                host, port, get.get("path", "/"), get.get("httpHeaders", []), timeout
            )
        if "tcpSocket" in probe:
            sock = probe["tcpSocket"]
            return await _tcp(sock.get("host") or pod_ip, _port(sock["port"], container), timeout)
        if "exec" in probe:
            return await _exec(list(probe["exec"]["command"]), pid, timeout)
    except (OSError, TimeoutError, ValueError):
        return False
    return False


class ProbeState:
    """successThreshold / failureThreshold bookkeeping for one probe."""

    def __init__(self, probe: Obj, initial: bool) -> None:
        self.success_threshold = int(probe.get("successThreshold", 1))
        self.failure_threshold = int(probe.get("failureThreshold", 3))
        self.result = initial
        self._successes = 0
        self._failures = 0

    def record(self, ok: bool) -> bool:
        if ok:
            self._successes += 1
            self._failures = 0
            if self._successes >= self.success_threshold:
                self.result = True
        else:
            self._failures += 1
            self._successes = 0
            if self._failures >= self.failure_threshold:
                self.result = False
        return self.result
