"""`propylon operator` and `propylon agent`: Kubernetes mode (the Helm chart runs these)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from propylon.cli.helmvalues import ValuesError
from propylon.cli.observability import add_log_args, add_metrics_args, configure_logging
from propylon.cli.run import add_values_args, values_from_args
from propylon.metrics import AddressError, Metrics, MetricsServer, default_metrics, serve_metrics

DEFAULT_NAMESPACE = "kube-system"


def duration(text: str) -> float:
    """`15s`, `1m`, `500ms` or plain seconds."""
    text = text.strip()
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig", type=Path, help="kubeconfig (default: in-cluster, else $KUBECONFIG)"
    )
    add_values_args(parser)
    parser.add_argument(
        "--namespace",
        default=os.environ.get("POD_NAMESPACE") or DEFAULT_NAMESPACE,
        help="namespace of the Lease and reports (default: $POD_NAMESPACE, else kube-system)",
    )
    add_metrics_args(parser)
    parser.add_argument("--health-address", metavar="HOST:PORT", help="/healthz and /readyz")
    add_log_args(parser)


def add_kube_parsers(subparsers: Any) -> None:
    op = subparsers.add_parser(
        "operator",
        help="the cluster's Gateway API controller (statuses, Services, LB-IPAM)",
        description="Watch the API server and write Gateway API statuses, generated "
        "Services and LoadBalancer addresses; one replica leads through a Lease.",
    )
    _common(op)
    elect = op.add_mutually_exclusive_group()
    elect.add_argument("--leader-elect", dest="leader_elect", action="store_true", default=True)
    elect.add_argument("--no-leader-elect", dest="leader_elect", action="store_false")
    op.add_argument("--lease-name", default="propylon-operator")
    op.add_argument("--lease-duration", type=duration, default=15.0)
    op.add_argument("--renew-deadline", type=duration, default=10.0)
    op.add_argument("--retry-period", type=duration, default=2.0)
    op.add_argument(
        "--no-require-agent-ack",
        dest="require_agent_ack",
        action="store_false",
        help="Programmed as soon as the configuration is valid, without an agent's Envoy "
        "having accepted it (for clusters without agents)",
    )
    op.set_defaults(func=cmd_operator)

    agent = subparsers.add_parser(
        "agent",
        help="per-node agent: programs the node's Envoy over xDS",
        description="Watch the API server, translate with the same core, program this "
        "node's Envoy and report what it accepted.",
    )
    agent.add_argument("--node-name", required=True)
    _common(agent)
    agent.add_argument("--state-dir", type=Path, default=Path("/var/run/propylon"))
    agent.add_argument("--admin-port", type=int, default=9901, help="Envoy admin on 127.0.0.1")
    agent.add_argument("--envoy-mode", choices=("embedded", "external"), default="embedded")
    agent.add_argument("--xds-socket", type=Path, help="external mode: Envoy connects here")
    agent.add_argument("--envoy-binary", type=Path)
    agent.add_argument(
        "--address-device",
        default="lo",
        help="interface the Gateway addresses are added to (default lo)",
    )
    agent.set_defaults(func=cmd_agent)


def setup_logging(fmt: str, level: str) -> None:
    configure_logging(level, fmt)
    # One line per HTTP request is far too much at info.
    for noisy in ("httpx2", "httpx", "httpcore", "httpcore2"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def start_metrics(address: str | None) -> tuple[Metrics, MetricsServer | None]:
    """The process's metrics, served on `address` if given (raises AddressError/OSError
    when it cannot listen: checked before anything else starts)."""
    metrics = default_metrics()
    if address is None:
        return metrics, None
    server = serve_metrics(address)
    logging.getLogger("propylon").info("metrics on http://%s/metrics", server.address)
    return metrics, server


def _kube_config_error(args: argparse.Namespace) -> str | None:
    """Why the Kubernetes configuration cannot be used, if it cannot (checked before
    starting, so a missing kubeconfig is one line, not a traceback)."""
    from lightkube.core.exceptions import ConfigError

    from propylon.kube.api import load_config

    try:
        load_config(args.kubeconfig)
    except (ConfigError, OSError, ValueError, KeyError) as exc:
        where = args.kubeconfig or "in-cluster ServiceAccount or $KUBECONFIG"
        return f"cannot use the Kubernetes configuration ({where}): {exc}"
    return None


def cmd_operator(args: argparse.Namespace) -> int:
    from propylon.kube.api import pod_identity
    from propylon.kube.leader import LeaseConfig
    from propylon.runtime.operator import OperatorOptions, serve

    setup_logging(args.log_format, args.log_level)
    try:
        values = values_from_args(args)
        lease = LeaseConfig(
            namespace=args.namespace,
            name=args.lease_name,
            identity=pod_identity(),
            lease_duration=args.lease_duration,
            renew_deadline=args.renew_deadline,
            retry_period=args.retry_period,
        )
    except (ValuesError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problem = _kube_config_error(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    options = OperatorOptions(
        namespace=args.namespace,
        kubeconfig=args.kubeconfig,
        values=values,
        leader_elect=args.leader_elect,
        lease=lease,
        health_address=args.health_address,
        metrics_address=args.metrics_address,
        require_agent_ack=args.require_agent_ack,
    )
    return _serve_with_metrics(
        args.metrics_address, lambda metrics: serve(options, metrics=metrics)
    )


def _serve_with_metrics(
    address: str | None, serve: Callable[[Metrics], Coroutine[Any, Any, int]]
) -> int:
    """Open the metrics endpoint (a bad address is one error line), then serve until
    stopped; the endpoint closes with it."""
    import asyncio

    try:
        metrics, server = start_metrics(address)
    except (AddressError, OSError) as exc:
        print(f"error: --metrics-address {address}: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(serve(metrics))
    except KeyboardInterrupt:
        return 130
    finally:
        if server is not None:
            server.close()


def cmd_agent(args: argparse.Namespace) -> int:
    from propylon.runtime.agent import AgentOptions, serve

    setup_logging(args.log_format, args.log_level)
    try:
        values = values_from_args(args)
    except ValuesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.envoy_mode == "external" and args.xds_socket is None:
        print("error: --envoy-mode external needs --xds-socket", file=sys.stderr)
        return 2
    problem = _kube_config_error(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    options = AgentOptions(
        node_name=args.node_name,
        namespace=args.namespace,
        kubeconfig=args.kubeconfig,
        values=values,
        state_dir=args.state_dir,
        admin_port=args.admin_port,
        envoy_mode=args.envoy_mode,
        xds_socket=args.xds_socket,
        envoy_binary=args.envoy_binary,
        address_device=args.address_device,
        health_address=args.health_address,
        metrics_address=args.metrics_address,
    )
    return _serve_with_metrics(
        args.metrics_address, lambda metrics: serve(options, metrics=metrics)
    )
