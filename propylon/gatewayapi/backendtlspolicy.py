"""BackendTLSPolicy: which policy applies to a Service port, and the policy's status.

- A policy targets a Service (`group: ""`, `kind: Service`), optionally one port of it by
  `sectionName` (the port's name). For a port, a policy naming that port wins over one
  naming the whole Service; both can be Accepted at once.
- Policies that select the same target *and* sectionName conflict: the oldest by
  creationTimestamp wins, then the first by name; the others are `Accepted=False`,
  reason `Conflicted`, and are not applied.
- `caCertificateRefs` must be ConfigMaps in the policy's namespace holding a PEM `ca.crt`.
  A ref of another group/kind makes `ResolvedRefs=False/InvalidKind`; a missing ConfigMap
  or one without a PEM `ca.crt` makes `ResolvedRefs=False/InvalidCACertificateRef`. When no
  ref is usable the policy is `Accepted=False/NoValidCACertificate`, and the Service port it
  governs is unusable: requests to it get HTTP 500, never plaintext.
- Status is per ancestor: every Gateway with an accepted route that uses a targeted Service
  port, as `status.ancestors[]` with our controllerName (at most 16).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from propylon.gatewayapi import conditions as c
from propylon.gatewayapi.index import Index, age_key
from propylon.model import UpstreamTLS
from propylon.resources import GATEWAY_GROUP, BackendTLSPolicy, ObjectKey

# Policy reasons (gateway.networking.k8s.io v1.4: PolicyReason*, BackendTLSPolicyReason*).
R_CONFLICTED = "Conflicted"
R_NO_VALID_CA_CERTIFICATE = "NoValidCACertificate"
R_INVALID_CA_CERTIFICATE_REF = "InvalidCACertificateRef"
MAX_ANCESTORS = 16

# (namespace, service, sectionName or None)
Target = tuple[str, str, str | None]


@dataclass(frozen=True)
class PolicyVerdict:
    """A policy evaluated on its own (references), before conflicts."""

    policy: BackendTLSPolicy
    tls: UpstreamTLS | None  # None: no usable CA certificate
    refs_reason: str = c.R_RESOLVED_REFS
    refs_message: str = "All references are resolved"

    @property
    def key(self) -> ObjectKey:
        return self.policy.key


def _is_pem_certificate(text: str | None) -> bool:
    return (
        bool(text) and "-----BEGIN CERTIFICATE-----" in (text or "") and "-----END " in (text or "")
    )


def evaluate_policy(index: Index, policy: BackendTLSPolicy) -> PolicyVerdict:
    ns = policy.metadata.namespace
    validation = policy.spec.validation
    sans = tuple((san.type, san.hostname or san.uri or "") for san in validation.subject_alt_names)
    if not validation.ca_certificate_refs:  # wellKnownCACertificates: System
        return PolicyVerdict(policy, UpstreamTLS(validation.hostname, None, sans))
    pems: list[str] = []
    problems: list[tuple[str, str]] = []
    for ref in validation.ca_certificate_refs:
        if ref.group != "" or ref.kind != "ConfigMap":
            problems.append(
                (
                    c.R_INVALID_KIND,
                    f"caCertificateRef {ref.group or 'core'}/{ref.kind} {ref.name}: "
                    "only ConfigMaps are supported",
                )
            )
            continue
        cm = index.config_maps.get((ns, ref.name))
        if cm is None:
            problems.append(
                (
                    R_INVALID_CA_CERTIFICATE_REF,
                    f"caCertificateRef ConfigMap {ns}/{ref.name} not found",
                )
            )
            continue
        pem = cm.data.get("ca.crt")
        if not _is_pem_certificate(pem):
            problems.append(
                (
                    R_INVALID_CA_CERTIFICATE_REF,
                    f"caCertificateRef ConfigMap {ns}/{ref.name} has no PEM certificate in ca.crt",
                )
            )
            continue
        assert pem is not None
        pems.append(pem.strip() + "\n")
    tls = UpstreamTLS(validation.hostname, "".join(pems), sans) if pems else None
    if not problems:
        return PolicyVerdict(policy, tls)
    reason = c.R_INVALID_KIND if any(r == c.R_INVALID_KIND for r, _ in problems) else problems[0][0]
    return PolicyVerdict(policy, tls, reason, "; ".join(m for _, m in problems))


@dataclass
class _Ancestors:
    gateways: set[ObjectKey] = field(default_factory=set)
    conflicted: set[ObjectKey] = field(default_factory=set)  # gateways where this policy lost


class BackendTLSPolicies:
    """All BackendTLSPolicies of a build: lookup per Service port, and their status."""

    def __init__(self, index: Index) -> None:
        self.verdicts: dict[ObjectKey, PolicyVerdict] = {}
        by_target: dict[Target, list[BackendTLSPolicy]] = defaultdict(list)
        for policy in index.backend_tls_policies.values():
            self.verdicts[policy.key] = evaluate_policy(index, policy)
            seen: set[Target] = set()
            for ref in policy.spec.target_refs:
                target = (policy.metadata.namespace, ref.name, ref.section_name)
                if ref.group != "" or ref.kind != "Service" or target in seen:
                    continue
                seen.add(target)
                by_target[target].append(policy)
        # target -> (winner, losers)
        self._targets: dict[Target, tuple[ObjectKey, tuple[ObjectKey, ...]]] = {}
        for target, policies in by_target.items():
            ordered = sorted(policies, key=age_key)
            self._targets[target] = (ordered[0].key, tuple(p.key for p in ordered[1:]))
        self._ancestors: dict[ObjectKey, _Ancestors] = defaultdict(_Ancestors)
        self._uses: list[tuple[str, str, str]] = []

    def for_port(self, namespace: str, service: str, port_name: str) -> PolicyVerdict | None:
        """The policy that governs this Service port, if any (sectionName match first);
        the use is remembered for `record_ancestors`."""
        self._uses.append((namespace, service, port_name))
        for target in ((namespace, service, port_name), (namespace, service, None)):
            entry = self._targets.get(target)
            if entry is not None:
                return self.verdicts[entry[0]]
        return None

    def record_ancestors(self, gateways: set[ObjectKey]) -> None:
        """The Service ports looked up since the last call were used by routes accepted by
        `gateways`: those Gateways become ancestors of every policy targeting the ports."""
        uses, self._uses = self._uses, []
        if not gateways:
            return
        for ns, service, port_name in uses:
            for target in ((ns, service, port_name), (ns, service, None)):
                entry = self._targets.get(target)
                if entry is None:
                    continue
                winner, losers = entry
                self._ancestors[winner].gateways.update(gateways)
                for loser in losers:
                    self._ancestors[loser].gateways.update(gateways)
                    self._ancestors[loser].conflicted.update(gateways)

    def statuses(self) -> dict[ObjectKey, dict[str, Any]]:
        out: dict[ObjectKey, dict[str, Any]] = {}
        for key, verdict in sorted(self.verdicts.items()):
            anc = self._ancestors.get(key)
            if anc is None:
                continue
            gen = verdict.policy.metadata.generation
            ancestors = []
            for gw in sorted(anc.gateways)[:MAX_ANCESTORS]:
                if gw in anc.conflicted:
                    accepted = c.condition(
                        c.ACCEPTED,
                        False,
                        R_CONFLICTED,
                        "Another BackendTLSPolicy takes precedence for the same target",
                        gen,
                    )
                elif verdict.tls is None:
                    accepted = c.condition(
                        c.ACCEPTED,
                        False,
                        R_NO_VALID_CA_CERTIFICATE,
                        "None of the caCertificateRefs is valid",
                        gen,
                    )
                else:
                    accepted = c.condition(c.ACCEPTED, True, c.R_ACCEPTED, "Policy accepted", gen)
                resolved = c.condition(
                    c.RESOLVED_REFS,
                    verdict.refs_reason == c.R_RESOLVED_REFS,
                    verdict.refs_reason,
                    verdict.refs_message,
                    gen,
                )
                ancestors.append(
                    {
                        "ancestorRef": {
                            "group": GATEWAY_GROUP,
                            "kind": "Gateway",
                            "namespace": gw.namespace,
                            "name": gw.name,
                        },
                        "controllerName": c.CONTROLLER_NAME,
                        "conditions": [accepted, resolved],
                    }
                )
            out[key] = {"ancestors": ancestors}
        return out
