"""`propylon`: the command line.

propylon run -f PATH...          serve manifests through Envoy, watching the files
propylon get KIND [NAME]         list objects and their status (kubectl-style)
propylon describe KIND NAME      one object in detail, with conditions
propylon validate -f PATH...     report every problem in manifests
propylon translate -f PATH...    print statuses and xDS resources
propylon explain -f PATH... --from IP --gateway NS/NAME [--path P]
                                 why network policy allows or denies a request
propylon demo ...                the walkthrough's demo backends and client
propylon operator / agent        Kubernetes mode (the Helm chart runs these)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from propylon.cli.explain import add_explain_parser
from propylon.cli.get import add_get_parsers
from propylon.cli.kinds import UnknownResourceError
from propylon.cli.kube import add_kube_parsers
from propylon.cli.run import add_run_parser
from propylon.cli.validate import add_validate_parsers
from propylon.demo.cli import add_demo_parser
from propylon.state import STATE_DIR_ENV, ApiError, NoInstanceError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="propylon",
        description="A Kubernetes Gateway API implementation with Envoy as its data plane.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"state directory (default: ${STATE_DIR_ENV} or ~/.local/state/propylon)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_run_parser(subparsers, common)
    add_get_parsers(subparsers, common)
    add_validate_parsers(subparsers)
    add_explain_parser(subparsers)
    add_demo_parser(subparsers)
    add_kube_parsers(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # kubectl takes names after options too (`get gtw -n ns NAME`); argparse stops filling
    # a `*` positional at the first option, so the names that follow are added back here.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if getattr(args, "names", None) is None or any(e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.names = [*args.names, *extra]
    try:
        result = args.func(args)
    except (NoInstanceError, UnknownResourceError, ApiError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
