"""Least-privilege RBAC: the chart grants exactly what the processes use.

Two checks: the rendered rules equal the table below (what the chart is meant to
grant), and, where the Kubernetes shell (`propylon/kube`) exists, the table equals what
its code calls: every `api.<verb>(kinds.X, ...)` in it is granted, and nothing is
granted that no call uses (except the few rules listed in AHEAD_OF_CODE, each with its
reason), for both processes together and for each one (the modules its entry module,
`propylon.runtime.operator` or `propylon.runtime.agent`, imports). The code is read with
`ast`, not run; $PROPYLON_SOURCE points the check at another checkout's package.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from chart_harness import REPO, one, template

Grant = tuple[str, str, str]  # (API group, resource[/subresource], verb)

GW = "gateway.networking.k8s.io"
XGW = "gateway.networking.x-k8s.io"
GATEWAY_KINDS = (
    "gatewayclasses",
    "gateways",
    "httproutes",
    "grpcroutes",
    "tlsroutes",
    "tcproutes",
    "udproutes",
    "referencegrants",
    "backendtlspolicies",
    "listenersets",
)
WITH_STATUS = (
    "gatewayclasses",
    "gateways",
    "httproutes",
    "grpcroutes",
    "tlsroutes",
    "tcproutes",
    "udproutes",
    "backendtlspolicies",
    "listenersets",
)

READS: set[Grant] = {
    *((GW, r, v) for r in GATEWAY_KINDS for v in ("list", "watch")),
    *((XGW, "xlistenersets", v) for v in ("list", "watch")),
    *(
        ("", r, v)
        for r in ("namespaces", "services", "secrets", "configmaps")
        for v in ("list", "watch")
    ),
    *(("discovery.k8s.io", "endpointslices", v) for v in ("list", "watch")),
    *(
        ("cilium.io", r, v)
        for r in ("ciliumgatewayclassconfigs", "ciliumloadbalancerippools")
        for v in ("list", "watch")
    ),
    *(("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("list", "watch")),
    *(("", "nodes", v) for v in ("list", "watch")),  # hostNetwork: the nodes' addresses
}
OPERATOR_CLUSTER: set[Grant] = {
    *READS,
    *((GW, r, "get") for r in WITH_STATUS),  # re-read after a status write conflict
    *((GW, f"{r}/status", "patch") for r in WITH_STATUS),
    (XGW, "xlistenersets", "get"),
    (XGW, "xlistenersets/status", "patch"),
    ("cilium.io", "ciliumgatewayclassconfigs", "get"),
    ("cilium.io", "ciliumgatewayclassconfigs/status", "patch"),
    (GW, "gatewayclasses", "create"),
    *(("", "services", v) for v in ("create", "patch", "delete")),
    ("", "services/status", "patch"),
    *(("discovery.k8s.io", "endpointslices", v) for v in ("create", "patch", "delete")),
    ("events.k8s.io", "events", "create"),
    *(("coordination.k8s.io", "leases", v) for v in ("list", "watch")),  # node reports
}
OPERATOR_NAMESPACE: set[Grant] = {
    ("coordination.k8s.io", "leases", "create"),
    ("coordination.k8s.io", "leases", "get"),
    ("coordination.k8s.io", "leases", "update"),
}
# Secrets: the agents read them only in gatewayAPI.secretsNamespace.name.
AGENT_CLUSTER: set[Grant] = {
    *(READS - {("", "secrets", "list"), ("", "secrets", "watch")}),
    # Network policy: the agents enforce it.
    *(
        ("cilium.io", r, v)
        for r in ("ciliumnetworkpolicies", "ciliumclusterwidenetworkpolicies")
        for v in ("list", "watch")
    ),
    *(("", "pods", v) for v in ("list", "watch")),
}
AGENT_NAMESPACE: set[Grant] = {
    ("coordination.k8s.io", "leases", v) for v in ("create", "get", "patch")
}
AGENT_SECRETS: set[Grant] = {("", "secrets", "list"), ("", "secrets", "watch")}
# The copies of the Secrets that Gateways reference (gatewayAPI.secretsNamespace.sync).
OPERATOR_SECRETS: set[Grant] = {("", "secrets", v) for v in ("create", "patch", "delete")}

# Granted before the code that uses it has landed, with the reason.
AHEAD_OF_CODE: dict[Grant, str] = {}


def grants(rules: Iterable[dict[str, Any]]) -> set[Grant]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_operator_cluster_role() -> None:
    docs = template()
    assert grants(one(docs, "ClusterRole", "propylon-operator")["rules"]) == OPERATOR_CLUSTER


def test_operator_lease_role_is_its_namespace_and_lease_only() -> None:
    docs = template("operator.leaderElection.leaseName=my-lease")
    role = one(docs, "Role", "propylon-operator-leader-election")
    assert role["metadata"]["namespace"] == "kube-system"
    assert grants(role["rules"]) == OPERATOR_NAMESPACE
    for rule in role["rules"]:
        # `create` cannot be limited by name (the name is not known before); the rest is.
        assert rule["verbs"] == ["create"] or rule["resourceNames"] == ["my-lease"]


def test_agent_reads_and_writes_only_its_node_report() -> None:
    docs = template()
    assert grants(one(docs, "ClusterRole", "propylon-agent")["rules"]) == AGENT_CLUSTER
    assert {verb for _, _, verb in AGENT_CLUSTER} == {"list", "watch"}
    role = one(docs, "Role", "propylon-agent-node-report")
    assert (role["metadata"]["namespace"], grants(role["rules"])) == (
        "kube-system",
        AGENT_NAMESPACE,
    )


def test_secrets_namespace_roles() -> None:
    docs = template("gatewayAPI.secretsNamespace.name=tls-copies")
    agent = one(docs, "Role", "propylon-agent-secrets")
    operator = one(docs, "Role", "propylon-operator-secrets")
    assert (agent["metadata"]["namespace"], grants(agent["rules"])) == ("tls-copies", AGENT_SECRETS)
    assert (operator["metadata"]["namespace"], grants(operator["rules"])) == (
        "tls-copies",
        OPERATOR_SECRETS,
    )
    for name, account in (
        ("propylon-agent-secrets", "propylon"),
        ("propylon-operator-secrets", "propylon-operator"),
    ):
        binding = one(docs, "RoleBinding", name)
        assert binding["metadata"]["namespace"] == "tls-copies"
        assert binding["subjects"][0]["name"] == account
    # Without sync someone else keeps the copies: the operator writes no Secret.
    docs = template("gatewayAPI.secretsNamespace.sync=false")
    assert not [d for d in docs if d["metadata"]["name"] == "propylon-operator-secrets"]
    one(docs, "Role", "propylon-agent-secrets")


def test_bindings_name_the_service_accounts() -> None:
    docs = template()
    for binding, account in (
        (one(docs, "ClusterRoleBinding", "propylon-operator"), "propylon-operator"),
        (one(docs, "ClusterRoleBinding", "propylon-agent"), "propylon"),
        (one(docs, "RoleBinding", "propylon-operator-leader-election"), "propylon-operator"),
        (one(docs, "RoleBinding", "propylon-agent-node-report"), "propylon"),
    ):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": "kube-system"}
        ]
    accounts = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
    assert accounts == {"propylon-operator", "propylon", "propylon-envoy"}


def test_no_gateway_class_creation_when_disabled() -> None:
    docs = template("gatewayAPI.gatewayClass.create=false")
    rules = grants(one(docs, "ClusterRole", "propylon-operator")["rules"])
    assert rules == OPERATOR_CLUSTER - {(GW, "gatewayclasses", "create")}


# --- what the code calls -------------------------------------------------------------

VERBS = {
    "get": "get",
    "list": "list",
    "watch": "watch",
    "create": "create",
    "replace": "update",
    "update": "update",
    "patch": "patch",
    "delete": "delete",
}


def _package_dir() -> Path:
    """The `propylon` package to read ($PROPYLON_SOURCE: another checkout's)."""
    return Path(os.environ.get("PROPYLON_SOURCE", REPO / "propylon"))


def _kinds(kinds_py: Path) -> tuple[dict[str, tuple[str, str]], dict[str, list[str]]]:
    """From kinds.py: constant -> (group, plural) for each `Kind(...)`, and each
    collection (tuple/dict of constants) -> its constants."""
    tree = ast.parse(kinds_py.read_text())
    consts: dict[str, tuple[str, str]] = {}
    groups: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        value = getattr(node, "value", None)
        if not isinstance(target, ast.Name) or value is None:
            continue
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            names[target.id] = value.value
        elif isinstance(value, ast.Call) and getattr(value.func, "id", "") == "Kind":
            group, _, plural = (
                names[a.id] if isinstance(a, ast.Name) else a.value for a in value.args[:3]
            )
            consts[target.id] = (group, plural)
        else:
            members = [n.id for n in ast.walk(value) if isinstance(n, ast.Name) and n.id in consts]
            if members:
                groups[target.id] = members
    return consts, groups


def _is_api(node: ast.expr) -> bool:
    """`self.api`, `api`, `x.api`: the Kubernetes client (propylon.kube.api.KubeApi)."""
    return (isinstance(node, ast.Attribute) and node.attr == "api") or (
        isinstance(node, ast.Name) and node.id == "api"
    )


def _module_path(package: Path, module: str) -> Path | None:
    parts = module.split(".")[1:]
    for candidate in (
        package.joinpath(*parts).with_suffix(".py"),
        package.joinpath(*parts, "__init__.py"),
    ):
        if parts and candidate.exists():
            return candidate
    return None


def reachable(package: Path, entry: str) -> set[Path]:
    """The files of `propylon` that module `entry` imports, directly or not."""
    seen: set[Path] = set()
    todo = [entry]
    while todo:
        path = _module_path(package, todo.pop())
        if path is None or path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.startswith("propylon."):
                    todo.append(node.module)
                    todo.extend(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                todo.extend(a.name for a in node.names if a.name.startswith("propylon."))
    return seen


def code_grants(package: Path, only: set[Path] | None = None) -> set[Grant]:
    """The API requests made by the code in `package` (or only in the files `only`)."""
    consts, groups = _kinds(package / "kube" / "kinds.py")

    def resolve(name: str) -> list[tuple[str, str]]:
        if name in consts:
            return [consts[name]]
        return [consts[k] for k in groups.get(name, ())]

    files = sorted(package.rglob("*.py")) if only is None else sorted(only)
    trees = [(p, ast.parse(p.read_text())) for p in files]
    # What reflectors are made for: the default set, the CRDs, and every kind named in a
    # KubeSource(...) or Reflector(...) call (their list and watch calls take a variable).
    watched = [*resolve("WATCHED"), *resolve("CRD")]
    for _, tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in (
                "KubeSource",
                "Reflector",
            ):
                for arg in ast.walk(node):
                    if isinstance(arg, ast.Attribute) and getattr(arg.value, "id", "") == "kinds":
                        watched += resolve(arg.attr)
    status_kinds = resolve("WITH_STATUS")
    out: set[Grant] = set()
    for path, tree in trees:
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if not _is_api(node.func.value) or node.func.attr not in VERBS or not node.args:
                continue
            verb = VERBS[node.func.attr]
            sub = next(
                (
                    k.value.value
                    for k in node.keywords
                    if k.arg == "sub" and isinstance(k.value, ast.Constant)
                ),
                "",
            )
            first = node.args[0]
            if isinstance(first, ast.Attribute) and getattr(first.value, "id", "") == "kinds":
                targets = resolve(first.attr)
            elif verb in ("list", "watch"):
                targets = watched  # a reflector's
            elif verb == "get" or sub == "status":
                targets = status_kinds  # status writes and their conflict re-reads
            else:
                raise AssertionError(f"{path}:{node.lineno}: cannot tell which kind is {verb}")
            assert targets, f"{path}:{node.lineno}: unknown kind {ast.unparse(first)}"
            for group, plural in targets:
                out.add((group, f"{plural}/{sub}" if sub else plural, verb))
    return out


def test_rbac_is_exactly_what_the_code_uses() -> None:
    package = _package_dir()
    if not (package / "kube" / "kinds.py").exists():
        pytest.skip(f"the Kubernetes shell ({package}/kube) has not landed: the table is checked")
    used = code_grants(package)
    granted = (
        OPERATOR_CLUSTER
        | OPERATOR_NAMESPACE
        | OPERATOR_SECRETS
        | AGENT_CLUSTER
        | AGENT_NAMESPACE
        | AGENT_SECRETS
    )
    assert sorted(used - granted) == [], "used by the code but not granted"
    unused = granted - used - AHEAD_OF_CODE.keys()
    assert sorted(unused) == [], "granted but no code uses it"


@pytest.mark.parametrize(
    ("entry", "granted"),
    [
        ("propylon.runtime.operator", OPERATOR_CLUSTER | OPERATOR_NAMESPACE | OPERATOR_SECRETS),
        ("propylon.runtime.agent", AGENT_CLUSTER | AGENT_NAMESPACE | AGENT_SECRETS),
    ],
    ids=["operator", "agent"],
)
def test_each_service_account_has_what_its_process_uses(entry: str, granted: set[Grant]) -> None:
    """Per process: the requests made by the code its entry module imports (directly or
    not) against what its ServiceAccount is granted."""
    package = _package_dir()
    if _module_path(package, entry) is None:
        pytest.skip(f"{entry} has not landed: the table is checked")
    used = code_grants(package, reachable(package, entry))
    assert sorted(used - granted) == [], f"{entry}: used but not granted"
    assert sorted(granted - used - AHEAD_OF_CODE.keys()) == [], f"{entry}: granted, unused"
