"""Typed Kubernetes-style resources that Propylon reads: Gateway API, core, Cilium."""
