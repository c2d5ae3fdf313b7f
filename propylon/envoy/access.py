"""Network policy's verdicts (`model.Access`) -> Envoy: RBAC filters and endpoint sets.

- A Listener's client -> `ingress` verdict: two HTTP RBAC filters in each of its HTTP
  connection managers (DENY for deny rules, then ALLOW for allow rules), or network RBAC
  filters on TLS passthrough chains; a refusal is 403 with Cilium's body
  `Access denied\\r\\n` (a local reply mapper), or a closed connection.
- A Cluster's `ingress` -> backend verdict: endpoints left out of its load assignment,
  an upstream HTTP RBAC filter (ALLOW) for L7 rules, and for a refusal of everything
  one endpoint: an internal listener of the same Envoy that answers 403.

Filter names are stable (`propylon.policy.deny`, `propylon.policy.allow`), so a
listener's shape changes only when its verdict does."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.message import Message

from propylon import model as m
from propylon.envoy import _pb as pb
from propylon.envoy import _pb_rbac as rb

DENY_FILTER = "propylon.policy.deny"
ALLOW_FILTER = "propylon.policy.allow"
BACKEND_FILTER = "propylon.policy.backend"


def _http_rule(rule: m.HttpRule) -> Message:
    perms: list[Message] = []
    if rule.method is not None:
        perms.append(rb.header_regex(":method", rule.method))
    if rule.path is not None:
        perms.append(rb.header_regex(":path", rule.path))
    if rule.host is not None:
        perms.append(rb.header_regex(":authority", rule.host))
    for name, value in rule.headers:
        perms.append(rb.header_present(name) if value is None else rb.header_exact(name, value))
    return rb.all_of(perms)


def _requests(rules: Sequence[m.HttpRule]) -> Message:
    """Any request when `rules` is empty, else one matching some rule."""
    if not rules:
        return rb.any_permission()
    return rb.one_of([_http_rule(r) for r in rules])


def _policies(rules: Sequence[m.AccessRule], *, http: bool) -> list[tuple[str, Message]]:
    out: list[tuple[str, Message]] = []
    for i, r in enumerate(rules):
        perm = _requests(r.http) if http else rb.any_permission()
        principal = rb.principal(r.sources.cidrs, r.sources.excluded)
        # RBAC keys policies by name; the index keeps two sources of one rule apart.
        out.append((f"{i}: {r.name}", rb.policy(perm, [principal])))
    return out


#: What a Listener's messages depend on: its verdict (None: not restricted), and whether
#: any policy exists (then 403 local replies carry Cilium's body, also for refusals by a
#: cluster's upstream filter, which the connection manager's reply mapper rewrites).
ListenerPolicy = tuple[m.ListenerAccess | None, bool]
NO_POLICY: ListenerPolicy = (None, False)


def listener_policy(model_access: m.Access | None, listener: str) -> ListenerPolicy:
    if model_access is None:
        return NO_POLICY
    return (model_access.listeners.get(listener), True)


def add_listener_access(hcm: Message, policy: ListenerPolicy) -> Message:
    """The hook `listener.build_listener` calls on each HTTP connection manager."""
    access, active = policy
    if active:
        hcm.local_reply_config.CopyFrom(rb.access_denied_reply())
    if access is None:
        return hcm
    filters = [
        rb.http_rbac_filter(DENY_FILTER, rb.rules(rb.DENY, _policies(access.deny, http=True))),
        rb.http_rbac_filter(ALLOW_FILTER, rb.rules(rb.ALLOW, _policies(access.allow, http=True))),
    ]
    at = len(hcm.http_filters) - 1
    # Before CORS and the router (after the scoped-routing Lua filter, if any).
    for i, f in enumerate(hcm.http_filters):
        if f.name == pb.CORS_FILTER:
            at = i
            break
    for f in reversed(filters):
        hcm.http_filters.insert(at, f)
    return hcm


def passthrough_access(policy: ListenerPolicy, stat_prefix: str) -> list[Message]:
    """Network RBAC filters for a TLS passthrough chain (L3/L4 only: a rule with HTTP
    rules cannot be checked on an encrypted stream and admits nothing here)."""
    access = policy[0]
    if access is None:
        return []
    allow = [r for r in access.allow if not r.http]
    return [
        rb.network_rbac_filter(
            f"{stat_prefix}.policy_deny.", rb.rules(rb.DENY, _policies(access.deny, http=False))
        ),
        rb.network_rbac_filter(
            f"{stat_prefix}.policy_allow.", rb.rules(rb.ALLOW, _policies(allow, http=False))
        ),
    ]


#: The internal listener that answers a refused cluster's requests (403 `Access
#: denied`): refusing a whole cluster is then an endpoint update (EDS), which Envoy
#: applies at once, not a cluster update (re-created, warmed, its pools drained).
DENY_LISTENER = "propylon/policy-deny"


def deny_listener() -> Message:
    return rb.deny_listener(DENY_LISTENER)


def cluster_filter_key(access: m.BackendAccess | None) -> object:
    """What of a cluster's verdict its Cluster message depends on (the L7 rules)."""
    return None if access is None or access.deny_all else access.require or None


def add_backend_access(cluster: Message, access: m.BackendAccess | None) -> Message:
    """The hook `cluster.build_cluster` calls: an upstream RBAC filter for L7 rules."""
    if access is None or access.deny_all or not access.require:
        return cluster
    perm = rb.all_of([_requests(rules) for rules in access.require])
    rbac = rb.rules(rb.ALLOW, [("l7", rb.policy(perm, [rb.any_principal()]))])
    key = pb.HTTP_PROTOCOL_OPTIONS
    options = cluster.typed_extension_protocol_options
    current = options.get(key)
    packed = rb.add_upstream_filters(current, [rb.http_rbac_filter(BACKEND_FILTER, rbac)])
    options[key].CopyFrom(packed)
    return cluster


def refused_load_assignment(c: m.Cluster, access: m.BackendAccess | None) -> Message | None:
    """A refused HTTP cluster's endpoint: the deny listener (None: not refused)."""
    if access is None or not access.deny_all or c.protocol is m.AppProtocol.TCP:
        return None
    return rb.internal_load_assignment(c.name, DENY_LISTENER)


def admitted_endpoints(c: m.Cluster, access: m.BackendAccess | None) -> list[tuple[str, int]]:
    ready = [(e.address, e.port) for e in c.endpoints if e.ready]
    if access is None:
        return ready
    if access.deny_all:
        return []  # TCP: no HTTP to answer 403 on, the connection is closed instead
    return [ep for ep in ready if ep not in access.excluded]
