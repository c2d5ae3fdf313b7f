"""Conformance tests (see tests/conformance/suites.py for the pattern)."""

from __future__ import annotations
