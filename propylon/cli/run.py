"""`propylon run`: command-line options -> `propylon.runtime.RunOptions` -> `runtime.run`."""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from propylon.cli.helmvalues import ValuesError, load_values
from propylon.cli.observability import add_log_args, add_metrics_args, configure_logging
from propylon.metrics import AddressError, parse_address
from propylon.state import default_state_dir
from propylon.values import Values

if TYPE_CHECKING:
    from propylon.runtime.options import RunOptions


def add_run_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    run = subparsers.add_parser(
        "run",
        parents=[common],
        help="serve the Gateway API objects in files through Envoy, watching for changes",
        description="Read Gateway API manifests from files and directories, watch them, and "
        "program a supervised Envoy.",
    )
    add_file_args(run)
    add_values_args(run)
    run.add_argument("--envoy-binary", type=Path, help="Envoy executable (default: bundled)")
    run.add_argument("--admin-port", type=int, help="Envoy admin port on 127.0.0.1")
    run.add_argument(
        "--ip-pool",
        action="append",
        default=[],
        dest="ip_pools",
        metavar="CIDR",
        help="addresses for Gateways when no CiliumLoadBalancerIPPool exists "
        "(default 127.10.0.0/16); repeatable",
    )
    add_metrics_args(run)
    add_log_args(run)
    run.set_defaults(func=cmd_run)


def add_file_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f",
        "--filename",
        dest="paths",
        action="append",
        type=Path,
        required=True,
        metavar="PATH",
        help="manifest file or directory (recursive; .yaml, .yml, .json); repeatable",
    )
    parser.add_argument(
        "--crds",
        action="append",
        default=[],
        type=Path,
        metavar="PATH",
        help="CustomResourceDefinition file or directory: objects of its kinds are validated "
        "against it (schema and CEL rules) as the API server would; repeatable, added to "
        "$PROPYLON_CRDS",
    )


def add_values_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--values",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="helm-style values YAML (gatewayAPI.*, envoy.*); repeatable, later wins",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        dest="set_values",
        metavar="KEY=VALUE",
        help="set a value, helm style (gatewayAPI.xffNumTrustedHops=1); repeatable",
    )


def values_from_args(args: argparse.Namespace) -> Values:
    return load_values(args.values, args.set_values)


def crd_paths_from_args(args: argparse.Namespace) -> tuple[Path, ...]:
    """`--crds` paths after those of $PROPYLON_CRDS."""
    from propylon.sources.crds import crd_paths_from_env

    return (*crd_paths_from_env(), *args.crds)


def check_crds(paths: tuple[Path, ...]) -> None:
    """Raise `ValuesError` naming a CRD file (`--crds`, $PROPYLON_CRDS) that cannot be
    used, before anything starts."""
    if not paths:
        return
    from propylon.sources.crds import CRDLoadError, load_crd_files

    try:
        load_crd_files(paths)
    except CRDLoadError as exc:
        raise ValuesError(f"--crds: {exc}") from None


def options_from_args(args: argparse.Namespace) -> RunOptions:
    """`propylon.runtime.RunOptions` from the command line (the runtime is imported
    here, not at start-up, so that `get` and `describe` start fast)."""
    from propylon.runtime.options import RunOptions

    if args.admin_port is not None and not 1 <= args.admin_port <= 65535:
        raise ValuesError(f"--admin-port {args.admin_port}: out of range (1-65535)")
    options = RunOptions(
        paths=tuple(args.paths),
        state_dir=args.state_dir or default_state_dir(),
        values=values_from_args(args),
        envoy_binary=args.envoy_binary,
        log_level=args.log_level,
        admin_port=args.admin_port,
        metrics_address=args.metrics_address,
        crds=crd_paths_from_args(args),
    )
    if args.ip_pools:
        options = dataclasses.replace(options, default_pool=_pools(args.ip_pools))
    return options


def _pools(cidrs: list[str]) -> tuple[str, ...]:
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError as exc:
            raise ValuesError(f"--ip-pool {cidr!r}: {exc}") from None
    return tuple(cidrs)


def cmd_run(args: argparse.Namespace) -> int:
    try:
        options = options_from_args(args)
        if options.metrics_address is not None:
            parse_address(options.metrics_address)
        check_crds(options.crds)  # a CRD file that cannot be used stops here, with its name
    except (ValuesError, AddressError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(options.log_level, args.log_format)
    from propylon.runtime import run  # imported here: it is slow to import (grpc)
    from propylon.runtime.options import RunError

    try:
        return run(options)
    except (AddressError, RunError) as exc:  # e.g. the metrics endpoint could not listen
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
