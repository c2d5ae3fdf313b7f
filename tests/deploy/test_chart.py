"""The Helm chart, rendered by the real helm: workloads, values, schema, Envoy bootstrap,
and the plain manifests generated from it."""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_harness import (
    CHART,
    REPO,
    container,
    env_sources,
    helm,
    one,
    refused,
    render_module,
    template,
)
from free_ports import free_port
from prometheus_client import CollectorRegistry

from propylon import model as m
from propylon.cli.helmvalues import load_values
from propylon.dataplane import find_envoy
from propylon.envoy import Translator
from propylon.metrics import Metrics
from propylon.xds import AdsServer

OPERATOR = ("Deployment", "propylon-operator")
AGENT = ("DaemonSet", "propylon-agent")
ENVOY = ("DaemonSet", "propylon-envoy")


def contract_parsers() -> dict[str, argparse.ArgumentParser]:
    """The command lines the chart may use: the operator/agent CLI contract."""
    common = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    common.add_argument("--kubeconfig")
    common.add_argument("--values", action="append")
    common.add_argument("--set", action="append")
    common.add_argument("--namespace")
    common.add_argument("--metrics-address", type=_host_port)
    common.add_argument("--health-address", type=_host_port)
    common.add_argument("--log-format", choices=["text", "json"])
    operator = argparse.ArgumentParser(parents=[common], exit_on_error=False)
    operator.add_argument("--leader-elect", action=argparse.BooleanOptionalAction)
    operator.add_argument("--lease-name")
    for flag in ("--lease-duration", "--renew-deadline", "--retry-period"):
        operator.add_argument(flag, type=_duration)
    agent = argparse.ArgumentParser(parents=[common], exit_on_error=False)
    agent.add_argument("--node-name", required=True)
    agent.add_argument("--state-dir")
    agent.add_argument("--admin-port", type=int)
    agent.add_argument("--envoy-mode", choices=["embedded", "external"])
    agent.add_argument("--xds-socket")
    return {"operator": operator, "agent": agent}


def _host_port(text: str) -> str:
    if not re.fullmatch(r"[^\s]*:\d{1,5}", text):
        raise argparse.ArgumentTypeError(f"not HOST:PORT: {text}")
    return text


def _duration(text: str) -> str:
    if not re.fullmatch(r"(\d+(ms|s|m|h))+", text):
        raise argparse.ArgumentTypeError(f"not a duration: {text}")
    return text


def expand(args: list[str], env: dict[str, str]) -> list[str]:
    """Kubernetes' $(VAR) expansion of container args."""
    return [re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), a) for a in args]


FIELD_VALUES = {"NODE_NAME": "node-1", "POD_NAMESPACE": "kube-system", "POD_NAME": "p"}


def command_line(workload: dict[str, Any], name: str) -> list[str]:
    c = container(workload, name)
    return [*c["command"], *expand(c["args"], FIELD_VALUES)]


def parse_with_contract(argv: list[str]) -> argparse.Namespace:
    assert argv[0] == "propylon", argv
    parser = contract_parsers()[argv[1]]
    try:
        parsed, unknown = parser.parse_known_args(argv[2:])
    except argparse.ArgumentError as exc:
        raise AssertionError(f"{argv}: {exc}") from None
    assert not unknown, f"not in the CLI contract: {unknown}"
    return parsed


def parse_with_propylon(argv: list[str]) -> None:
    """Once `propylon operator/agent` exist, the real parser must take the chart's args."""
    from propylon.cli.main import build_parser

    parser = build_parser()
    choices = next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if argv[1] in choices:  # landed with the Kubernetes mode
        parser.parse_args(argv[1:])


def test_lint() -> None:
    result = helm("lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr


def test_operator_deployment() -> None:
    docs = template()
    deployment = one(docs, *OPERATOR)
    assert deployment["spec"]["replicas"] == 2
    c = container(deployment, "operator")
    env = env_sources(c)
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    argv = command_line(deployment, "operator")
    parsed = parse_with_contract(argv)
    parse_with_propylon(argv)
    assert parsed.leader_elect is True
    assert (parsed.lease_name, parsed.lease_duration) == ("propylon-operator", "15s")
    assert (parsed.renew_deadline, parsed.retry_period) == ("10s", "2s")
    assert parsed.namespace == "kube-system"
    assert parsed.values == ["/etc/propylon/values.yaml"]
    health = next(p for p in c["ports"] if p["name"] == "health")["containerPort"]
    assert parsed.health_address == f":{health}"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["port"] == "health"
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_operator_without_leader_election_and_replicas() -> None:
    docs = template("operator.leaderElection.enabled=false", "operator.replicas=1")
    deployment = one(docs, *OPERATOR)
    assert deployment["spec"]["replicas"] == 1
    assert parse_with_contract(command_line(deployment, "operator")).leader_elect is False
    names = {d["metadata"]["name"] for d in docs if d["kind"] == "Role"}
    assert "propylon-operator-leader-election" not in names  # no leader Lease access


def test_agent_with_separate_envoy() -> None:
    docs = template()
    agent = one(docs, *AGENT)
    c = container(agent, "agent")
    assert env_sources(c)["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    argv = command_line(agent, "agent")
    parsed = parse_with_contract(argv)
    parse_with_propylon(argv)
    assert (parsed.node_name, parsed.envoy_mode) == ("node-1", "external")
    assert c["readinessProbe"]["httpGet"] == {"host": "127.0.0.1", "path": "/readyz", "port": 9879}
    assert parsed.health_address == "127.0.0.1:9879"
    # Envoy's DaemonSet mounts the same host directory the agent serves xDS in.
    envoy = one(docs, *ENVOY)
    socket_dir = Path(parsed.xds_socket).parent
    agent_dirs = _host_paths(agent, "agent")
    envoy_dirs = _host_paths(envoy, "envoy")
    assert agent_dirs[str(socket_dir)] == envoy_dirs[str(socket_dir)]
    bootstrap = yaml.safe_load(
        one(docs, "ConfigMap", "propylon-envoy-config")["data"]["bootstrap.yaml"]
    )
    xds = bootstrap["static_resources"]["clusters"][0]
    pipe = xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert pipe == {"pipe": {"path": parsed.xds_socket}}
    envoy_spec = envoy["spec"]["template"]["spec"]
    assert envoy_spec["hostNetwork"] is True and envoy_spec["automountServiceAccountToken"] is False
    argv = command_line(envoy, "envoy")
    assert argv[argv.index("--service-node") + 1] == "node-1"


def _host_paths(workload: dict[str, Any], name: str) -> dict[str, str]:
    """Mount path -> host path on node-1, for a container's hostPath volumes."""
    spec = workload["spec"]["template"]["spec"]
    host = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    c = container(workload, name)
    out = {}
    for mount in c["volumeMounts"]:
        if mount["name"] in host:
            sub = mount.get("subPathExpr", mount.get("subPath", ""))
            sub = expand([sub], FIELD_VALUES)[0]
            out[mount["mountPath"]] = f"{host[mount['name']]}/{sub}".rstrip("/")
    return out


def test_each_node_has_its_own_host_directories() -> None:
    """Several nodes on one host (the dev cluster) must not share a state directory or
    an xDS socket: the host directories are per node name."""
    docs = template()
    agent = _host_paths(one(docs, *AGENT), "agent")
    assert agent["/var/lib/propylon"] == "/var/lib/propylon/node-1"
    assert agent["/var/run/propylon/envoy"] == "/var/run/propylon/envoy/node-1"
    assert _host_paths(one(docs, *ENVOY), "envoy")["/var/run/propylon/envoy"] == (
        "/var/run/propylon/envoy/node-1"
    )


def test_agent_with_embedded_envoy() -> None:
    docs = template(
        "envoy.enabled=false", "envoy.securityContext.capabilities.keepCapNetBindService=true"
    )
    assert not [d for d in docs if d["kind"] == "DaemonSet" and "envoy" in d["metadata"]["name"]]
    assert not [d for d in docs if d["metadata"]["name"] == "propylon-envoy-config"]
    agent = one(docs, *AGENT)
    parsed = parse_with_contract(command_line(agent, "agent"))
    assert (parsed.envoy_mode, parsed.admin_port, parsed.xds_socket) == ("embedded", 9901, None)
    caps = container(agent, "agent")["securityContext"]["capabilities"]
    assert caps == {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_BIND_SERVICE"]}


@pytest.mark.parametrize(("keep", "added"), [(False, None), (True, ["NET_BIND_SERVICE"])])
def test_envoy_keeps_net_bind_service_only_when_asked(keep: bool, added: list[str] | None) -> None:
    docs = template(f"envoy.securityContext.capabilities.keepCapNetBindService={str(keep).lower()}")
    caps = container(one(docs, *ENVOY), "envoy")["securityContext"]["capabilities"]
    assert caps.get("add") == added and caps["drop"] == ["ALL"]
    agent_caps = container(one(docs, *AGENT), "agent")["securityContext"]["capabilities"]
    assert agent_caps["add"] == ["NET_ADMIN"]  # Envoy binds, not the agent


def test_host_network_nodes_select_where_gateways_are_served() -> None:
    docs = template(
        "gatewayAPI.hostNetwork.enabled=true",
        "gatewayAPI.hostNetwork.nodes.matchLabels.role=gateway",
    )
    for workload in (one(docs, *AGENT), one(docs, *ENVOY)):
        assert workload["spec"]["template"]["spec"]["nodeSelector"] == {"role": "gateway"}


def test_values_reach_the_processes(tmp_path: Path) -> None:
    """The ConfigMap the processes read holds the chart's values, and Propylon's own
    values parser reads them (one set of keys)."""
    docs = template(
        "gatewayAPI.xffNumTrustedHops=2",
        "gatewayAPI.externalTrafficPolicy=Local",
        "gatewayAPI.gatewayClass.create=false",
    )
    path = tmp_path / "values.yaml"
    path.write_text(one(docs, "ConfigMap", "propylon-config")["data"]["values.yaml"])
    values = load_values([path])
    assert values.gateway_api.xff_num_trusted_hops == 2
    assert values.gateway_api.external_traffic_policy == "Local"
    assert values.gateway_api.gateway_class.create is False
    assert values.separate_envoy is True
    # A values change rolls the pods (their checksum annotation changes).
    before = one(template(), *OPERATOR)["spec"]["template"]["metadata"]["annotations"]
    after = one(docs, *OPERATOR)["spec"]["template"]["metadata"]["annotations"]
    assert before["checksum/config"] != after["checksum/config"]


def _alias_paths(model: type[Any], prefix: str = "") -> set[str]:
    from pydantic import BaseModel

    out = set()
    for name, info in model.model_fields.items():
        key = f"{prefix}{info.alias or name}"
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out |= _alias_paths(annotation, key + ".")
        else:
            out.add(key)
    return out


def test_every_key_propylon_reads_is_a_chart_value() -> None:
    from propylon.values import Values

    chart_values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    for path in sorted(_alias_paths(Values)):
        node: Any = chart_values
        props: Any = schema
        for part in path.split("."):
            assert part in node, f"{path} is not in values.yaml"
            node = node[part]
            assert part in props["properties"], f"{path} is not in values.schema.json"
            props = props["properties"][part]
    # ... and the chart's defaults are valid for Propylon's parser.
    load_values([CHART / "values.yaml"])


@pytest.mark.parametrize(
    ("assignment", "path"),
    [
        ("gatewayAPI.xffNumTrustedHops=-1", "/gatewayAPI/xffNumTrustedHops"),
        ("gatewayAPI.gatewayClass.create=maybe", "/gatewayAPI/gatewayClass/create"),
        ("gatewayAPI.externalTrafficPolicy=Both", "/gatewayAPI/externalTrafficPolicy"),
        ("gatewayAPI.hostNetwork.enabled=yes", "/gatewayAPI/hostNetwork/enabled"),
        ("envoy.enabeld=true", "/envoy"),
        (
            "envoy.securityContext.capabilities.envoy[0]=net_admin",
            "/envoy/securityContext/capabilities/envoy/0",
        ),
        ("operator.replicas=two", "/operator/replicas"),
        ("operator.leaderElection.leaseDuration=15", "/operator/leaderElection/leaseDuration"),
        ("logFormat=yaml", "/logFormat"),
    ],
)
def test_schema_refuses_a_wrong_value_naming_its_path(assignment: str, path: str) -> None:
    error = refused(assignment)
    assert "values don't meet the specifications of the schema" in error
    assert f"at '{path}'" in error, error


async def test_envoy_daemonset_runs_against_an_agent() -> None:
    """The Envoy container's command line and bootstrap, as rendered (host paths moved
    into a temporary directory, the stats port to a free loopback port): Envoy connects
    to an xDS server on the shared socket, takes its configuration, and serves its own
    statistics for Prometheus."""
    docs = template()
    envoy = one(docs, *ENVOY)
    text = one(docs, "ConfigMap", "propylon-envoy-config")["data"]["bootstrap.yaml"]
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pde-") as tmp:  # short: unix socket paths
        for mount in ("/var/run/propylon/envoy-admin/", "/var/run/propylon/envoy/"):
            assert mount in text
            text = text.replace(mount, f"{tmp}/")
        text = text.replace("address: 0.0.0.0", "address: 127.0.0.1")
        text = text.replace("port_value: 9964", f"port_value: {port}")
        config = Path(tmp, "bootstrap.yaml")
        config.write_text(text)
        argv = command_line(envoy, "envoy")
        path = argv.index("--config-path") + 1
        assert argv[path] == "/etc/propylon-envoy/bootstrap.yaml"
        argv[path] = str(config)
        argv = [str(find_envoy()) if a == "envoy" else a for a in argv]
        registry = CollectorRegistry()
        server = AdsServer(metrics=Metrics(registry))
        await server.start(f"unix:{tmp}/xds.sock")
        model = m.Model(clusters=(m.Cluster("default:svc:80", (m.Endpoint("127.0.0.1", 9),)),))
        version = server.update(Translator().translate(model, m.ProxyOptions()))
        with Path(tmp, "envoy.log").open("wb") as log:
            process = await asyncio.create_subprocess_exec(*argv, stdout=log, stderr=log)
        try:
            try:
                await server.wait_acked(version, node_id="node-1", timeout=30)
            except TimeoutError:
                raise AssertionError(Path(tmp, "envoy.log").read_text()[-3000:]) from None
            stats = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
            assert "envoy_cluster_manager_active_clusters" in stats
            assert 'envoy_cluster_upstream_cx_total{envoy_cluster_name="default_svc_80"}' in stats
            assert registry.get_sample_value("propylon_xds_acks_total", {"kind": "Cluster"})
        finally:
            process.terminate()
            await process.wait()
            await server.stop()


def _get(url: str) -> str:
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # the listener is up once Envoy initialised; poll until then


def test_manifests_are_rendered_from_the_chart() -> None:
    module = render_module()
    expected = module.render()
    assert module.MANIFESTS.exists(), "deploy/manifests/propylon.yaml is missing"
    assert module.MANIFESTS.read_text() == expected, (
        "deploy/manifests/propylon.yaml is out of date: run python3 deploy/render_manifests.py"
    )
    kinds = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(expected) if d}
    assert {OPERATOR, AGENT, ENVOY} <= kinds
    assert ("CustomResourceDefinition", "ciliumgatewayclassconfigs.cilium.io") in kinds
    # Gateway API CRDs are the user's to install, as in the walkthrough.
    assert not any(n.endswith("gateway.networking.k8s.io") for _, n in kinds)


def test_gateway_api_crds_are_not_in_the_chart() -> None:
    for path in (CHART / "crds").iterdir():
        assert "gateway.networking.k8s.io" not in path.read_text(), path
    assert REPO.joinpath("deploy", "manifests", "propylon.yaml").exists()


def test_api_server_address_for_pods_without_kube_proxy() -> None:
    """As Cilium's k8sServiceHost/Port: the processes reach the API server directly when
    the `kubernetes` Service's ClusterIP is not routed (the dev cluster has no kube-proxy)."""
    docs = template("k8sServiceHost=198.18.0.1", "k8sServicePort=6443")
    for workload, name in ((one(docs, *OPERATOR), "operator"), (one(docs, *AGENT), "agent")):
        env = env_sources(container(workload, name))
        assert (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]) == (
            "198.18.0.1",
            "6443",
        )
    assert "KUBERNETES_SERVICE_HOST" not in env_sources(container(one(template(), *AGENT), "agent"))
