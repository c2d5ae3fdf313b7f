"""python -m devcluster.node --name node-1 --kubeconfig ... (see devcluster/README.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from devcluster.node.agent import run_agent
from devcluster.node.config import NodeConfig
from devcluster.node.hostmount import join_launcher_mount_namespace


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--label {text!r}: expected key=value")
    return key, value


def parse_args(argv: list[str]) -> NodeConfig:
    parser = argparse.ArgumentParser(prog="python -m devcluster.node", description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--node-ip", required=True)
    parser.add_argument("--pod-cidr", required=True)
    parser.add_argument("--bridge", default="cbr0")
    parser.add_argument("--api-host", required=True)
    parser.add_argument("--api-port", type=int, default=6443)
    parser.add_argument("--ca", required=True, type=Path)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--label", action="append", type=_label, default=[])
    parser.add_argument("--heartbeat-seconds", type=float, default=10.0)
    parser.add_argument("--serving-cert", type=Path, help="the kubelet API's certificate")
    parser.add_argument("--serving-key", type=Path)
    args = parser.parse_args(argv)
    return NodeConfig(
        name=args.name,
        # Absolute before leaving the mount namespace: setns resets the working directory.
        kubeconfig=args.kubeconfig.resolve(),
        node_ip=args.node_ip,
        pod_cidr=args.pod_cidr,
        bridge=args.bridge,
        api_host=args.api_host,
        api_port=args.api_port,
        ca=args.ca.resolve(),
        state_dir=args.state_dir.resolve(),
        labels=dict(args.label),
        heartbeat_seconds=args.heartbeat_seconds,
        serving_cert=args.serving_cert.resolve() if args.serving_cert else None,
        serving_key=args.serving_key.resolve() if args.serving_key else None,
    )


def main(argv: list[str] | None = None) -> int:
    config = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {config.name} %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    # One line per API request is noise at INFO; failures are logged by the agent itself.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    join_launcher_mount_namespace()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run_agent(config, stop)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
