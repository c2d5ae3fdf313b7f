"""Options every long-running command shares (`run`, `operator`, `agent`): log level and
format, and the Prometheus metrics address.

`--log-format json` writes one JSON object per line (for log collectors): `time`
(RFC 3339, UTC), `level`, `logger`, `msg`, the exception as `exc_info` if any, and any
`extra=` fields of the call.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_log_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="text (default) or json: one JSON object per line",
    )


def add_metrics_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics-address",
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (default: not served)",
    )


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger", "message": "msg"},
        timestamp="time",  # record.created as ISO 8601 in UTC
        json_ensure_ascii=False,
    )


def configure_logging(level: str, log_format: str, stream: TextIO | None = None) -> None:
    """Set up the root logger once for the process (replacing earlier handlers)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    if log_format == "json":
        handler.setFormatter(json_formatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
