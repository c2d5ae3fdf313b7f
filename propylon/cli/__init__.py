"""The `propylon` command line."""

from propylon.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
