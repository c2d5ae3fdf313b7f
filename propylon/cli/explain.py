"""`propylon explain`: why one request from one address to one Gateway is allowed or
denied by network policy, naming the policy and rule at each step (docs/policy.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from propylon.cli.run import add_file_args, add_values_args
from propylon.cli.validate import evaluate_files


def add_explain_parser(subparsers: Any) -> None:
    explain = subparsers.add_parser(
        "explain",
        help="why network policy allows or denies a request through a Gateway",
        description="Evaluate the manifests as `propylon run` would and follow one request "
        "from a client address through a Gateway's listener, route and backend endpoints, "
        "saying at each step which CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy "
        "rule decided. Exit status 0 if the request is allowed, 1 if denied.",
    )
    add_file_args(explain)
    add_values_args(explain)
    explain.add_argument("--from", dest="source", required=True, help="the client's address")
    explain.add_argument("--gateway", required=True, help="NAMESPACE/NAME (or NAME: default)")
    explain.add_argument(
        "--port", type=int, help="the listener's port (if the Gateway has several)"
    )
    explain.add_argument("--path", default="/", help="the request path (default /)")
    explain.add_argument("--host", default="", help="the Host header")
    explain.add_argument("--method", default="GET")
    explain.add_argument(
        "-H", "--header", action="append", default=[], help="NAME: VALUE; repeatable"
    )
    explain.set_defaults(func=cmd_explain)


def cmd_explain(
    args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    evaluated = evaluate_files(args, err)
    if isinstance(evaluated, int):
        return evaluated
    _, evaluation = evaluated
    from propylon.policy import Request, build_world, explain

    for diagnostic in evaluation.diagnostics:
        if diagnostic.is_error:
            print(f"{diagnostic.severity}: {diagnostic}", file=err)
    gateway = args.gateway if "/" in args.gateway else f"default/{args.gateway}"
    headers = []
    for text in args.header:
        name, _, value = text.partition(":")
        headers.append((name.strip(), value.strip()))
    request = Request(
        source=args.source,
        gateway=gateway,
        path=args.path,
        host=args.host,
        method=args.method,
        port=args.port,
        headers=tuple(headers),
    )
    world = build_world(evaluation.snapshot.resources())
    result = explain(evaluation.result.model, world, request)
    for step in result.steps:
        out.write(f"{step}\n")
    verdict = "ALLOWED" if result.allowed else "DENIED"
    out.write(f"{verdict} (status {result.status if result.status else 'none'})\n")
    return 0 if result.allowed else 1
