"""Cilium network policy for traffic through a Gateway, pure (see docs/policy.md).

- `identity`: who is on each end of a flow (`world`, the `ingress` identity, a Pod's
  labels) and Cilium's label selectors with source prefixes.
- `rules`: CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy -> flat `Rule`s.
- `verdict`: one flow (source, destination, port) in one direction -> `Verdict`.
- `engine`: a `Model` + the objects -> the same model with `Model.access` (what Envoy
  enforces), with memory between builds (`PolicyEngine`).
- `explain`: why one request from one address to one Gateway was allowed or denied.
"""

from propylon.policy.engine import POLICY_KINDS, PolicyEngine, World, build_world
from propylon.policy.explain import Request, explain

__all__ = ["POLICY_KINDS", "PolicyEngine", "Request", "World", "build_world", "explain"]
