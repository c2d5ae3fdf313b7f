"""Propylon: Gateway API to Envoy, modelled on Cilium's Gateway API controller."""

__version__ = "0.1.0"
