"""Finds, configures (bootstrap), starts and supervises Envoy."""

from propylon.dataplane._bootstrap import bootstrap
from propylon.dataplane._supervisor import EnvoyError, EnvoySupervisor, find_envoy

__all__ = ["EnvoyError", "EnvoySupervisor", "bootstrap", "find_envoy"]
