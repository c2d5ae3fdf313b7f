"""Helpers that tests, the benchmarks and the conformance runner share."""
