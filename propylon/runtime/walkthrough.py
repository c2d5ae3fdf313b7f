"""`propylon demo walkthrough`: the Cilium Gateway API walkthrough on one machine.

Starts the two demo backends where the walkthrough's EndpointSlices point (HTTP on
127.0.0.1:8080, gRPC on 127.0.0.1:50051), then the gateway on `examples/walkthrough/`,
and prints what to run against it once Envoy has acknowledged the configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from propylon.demo import serve_grpc, serve_http
from propylon.resources.meta import ObjectKey
from propylon.runtime.instance import Instance
from propylon.runtime.options import RunOptions
from propylon.state import default_state_dir

log = logging.getLogger("propylon.walkthrough")

GATEWAY = ObjectKey("Gateway", "default", "example-gateway")
HTTP_HOST = "http-test.mynetwork.local"
GRPC_HOST = "grpc-test.mynetwork.local"


def find_examples() -> Path:
    """The walkthrough manifests: beside the package in a source checkout, else ./examples."""
    for base in (Path(__file__).resolve().parents[2], Path.cwd()):
        candidate = base / "examples" / "walkthrough"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("examples/walkthrough not found; run from the Propylon checkout")


def instructions(address: str, state_dir: Path) -> str:
    state = "" if state_dir == default_state_dir() else f" --state-dir {state_dir}"
    return "\n".join(
        [
            "",
            f"Propylon is serving the walkthrough: Gateway example-gateway is at {address}",
            "Try, in another terminal (with the same virtual environment active):",
            "",
            f"  propylon get gateway{state}",
            f"  propylon get service{state}",
            f"  curl --resolve {HTTP_HOST}:8080:{address} http://{HTTP_HOST}:8080/",
            f"  propylon demo grpc-client --addr {address}:50051 --authority {GRPC_HOST}",
            "",
            "Edit the files in examples/walkthrough/ and the change is live within a second.",
            "Press Ctrl-C to stop.",
            "",
        ]
    )


async def walkthrough(options: RunOptions, *, http_port: int = 8080, grpc_port: int = 50051) -> int:
    http = await serve_http("127.0.0.1", http_port)
    grpc = await serve_grpc("127.0.0.1", grpc_port)
    instance = Instance(options)
    serving = asyncio.create_task(instance.serve(), name="propylon")
    try:
        ready = asyncio.create_task(instance.ready.wait())
        done, _ = await asyncio.wait({serving, ready}, return_when=asyncio.FIRST_COMPLETED)
        if serving in done:
            ready.cancel()
            serving.result()  # raises what stopped it
            return 1
        await instance.wait_programmed(timeout=30)
        address = instance.evaluation.result.addresses.get(GATEWAY) if instance.evaluation else None
        print(instructions(address or "<none>", options.state_dir), flush=True)
        await serving
        return 0
    finally:
        instance.stop()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await serving
        await grpc.close()
        await http.close()
