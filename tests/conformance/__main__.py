"""Run the Gateway API v1.4.1 conformance suite against a local `propylon run`.

python -m tests.conformance                                 # everything, report to stdout
python -m tests.conformance --report conformance/propylon-v1.4.1-report.yaml
python -m tests.conformance --run-test HTTPRouteWeight --run-test HTTPRouteMatching
python -m tests.conformance --fast                          # the pytest subset
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

import propylon

from . import (  # noqa: F401  (registers the tests)
    suites,
    suites_backend_grpc_tls,
    suites_core,
    suites_http_ext,
)
from .runner import TESTS, report, run_tests, write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.conformance",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--report", type=Path, help="write the ConformanceReport YAML here")
    parser.add_argument("--run-test", action="append", default=[], help="run only these tests")
    parser.add_argument("--fast", action="store_true", help="only the fast representative subset")
    parser.add_argument("--list", action="store_true", help="list the tests and exit")
    args = parser.parse_args(argv)
    tests = list(TESTS.values())
    if args.run_test:
        unknown = set(args.run_test) - set(TESTS)
        if unknown:
            parser.error(f"unknown tests: {sorted(unknown)}")
        tests = [t for t in tests if t.name in args.run_test]
    if args.fast:
        tests = [t for t in tests if t.fast]
    if args.list:
        for t in tests:
            print(t.name, ",".join(f"{p}:{'core' if c else 'ext'}" for p, c in t.profiles()))
        return 0
    start = time.monotonic()
    run = run_tests(tests, log=lambda line: print(line, flush=True))
    data = report(
        run, version=propylon.__version__ if hasattr(propylon, "__version__") else "0.1.0"
    )
    if args.report:
        write_report(args.report, data)
        print(f"report written to {args.report}")
    else:
        print(yaml.safe_dump(data, sort_keys=False))
    counts = {
        o: sum(r.outcome == o for r in run.results.values())
        for o in ("passed", "failed", "skipped")
    }
    print(f"{counts} in {time.monotonic() - start:.0f}s")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
