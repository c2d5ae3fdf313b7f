"""Core Kubernetes kinds: Namespace, Node, Service, Secret, ConfigMap (v1), EndpointSlice
(discovery.k8s.io/v1). Only the fields Propylon reads or writes are modelled."""

from __future__ import annotations

import base64
import binascii
import ipaddress
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from propylon.resources.base import Resource, Struct, record
from propylon.resources.common import PortNumber
from propylon.resources.names import dns1123_subdomain


@record
class Namespace(Resource):
    api_version: str = "v1"
    kind: str = "Namespace"

    @property
    def effective_labels(self) -> dict[str, str]:
        """Labels as the API server keeps them: the name label is always present."""
        return {**self.metadata.labels, "kubernetes.io/metadata.name": self.metadata.name}


@record
class ServicePort(Struct):
    name: str | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    app_protocol: str | None = None
    port: PortNumber
    target_port: int | str | None = None
    node_port: int | None = None


@record
class ServiceSpec(Struct):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"] = "ClusterIP"
    selector: dict[str, str] | None = None
    ports: tuple[ServicePort, ...] = Field(default=())
    cluster_ip: str | None = Field(default=None, alias="clusterIP")
    cluster_ips: list[str] | None = Field(default=None, alias="clusterIPs")
    external_name: str | None = None
    external_traffic_policy: Literal["Cluster", "Local"] | None = None
    # Allocated by the API server for LoadBalancer Services with the Local policy: the
    # node port where each node answers whether it serves the Service (/healthz).
    health_check_node_port: int | None = None
    load_balancer_ip: str | None = Field(default=None, alias="loadBalancerIP")
    load_balancer_class: str | None = None
    load_balancer_source_ranges: list[str] | None = None
    ip_families: list[str] | None = None
    ip_family_policy: str | None = None
    allocate_load_balancer_node_ports: bool | None = None
    traffic_distribution: str | None = None

    @field_validator("ports")
    @classmethod
    def _port_names(cls, ports: list[ServicePort]) -> list[ServicePort]:
        if len(ports) > 1 and any(not p.name for p in ports):
            raise ValueError("each port must have a name when a Service has more than one port")
        return ports

    @property
    def headless(self) -> bool:
        return self.cluster_ip == "None"


@record
class LoadBalancerIngress(Struct):
    ip: str | None = None
    hostname: str | None = None


@record
class LoadBalancerStatus(Struct):
    ingress: list[LoadBalancerIngress] = Field(default_factory=list)


@record
class ServiceStatus(Struct):
    load_balancer: LoadBalancerStatus | None = None


@record
class Service(Resource):
    api_version: str = "v1"
    kind: str = "Service"
    spec: ServiceSpec = Field(default_factory=ServiceSpec)
    status: ServiceStatus | None = None


@record
class EndpointConditions(Struct):
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


@record
class ObjectReference(Struct):
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None


@record
class Endpoint(Struct):
    addresses: tuple[str, ...] = Field(min_length=1, max_length=100)
    conditions: EndpointConditions = Field(default_factory=EndpointConditions)
    target_ref: ObjectReference | None = None
    hostname: str | None = None
    node_name: str | None = None
    zone: str | None = None

    @property
    def ready(self) -> bool:
        # Unknown readiness is treated as ready, as Kubernetes documents.
        return self.conditions.ready is not False


@record
class NodeAddress(Struct):
    type: str
    address: str


@record
class NodeCondition(Struct):
    type: str
    status: str = "Unknown"


@record
class NodeStatus(Struct):
    addresses: list[NodeAddress] = Field(default_factory=list)
    conditions: list[NodeCondition] = Field(default_factory=list)


@record
class Node(Resource):
    """Only what host network mode and NodePort Gateways read: the labels
    (gatewayAPI.hostNetwork.nodes.matchLabels), the addresses Gateways get there and
    readiness."""

    api_version: str = "v1"
    kind: str = "Node"
    status: NodeStatus = Field(default_factory=NodeStatus)

    @property
    def internal_addresses(self) -> tuple[str, ...]:
        """InternalIP addresses (else ExternalIP ones), as the node reports them."""
        for kind in ("InternalIP", "ExternalIP"):
            found = tuple(a.address for a in self.status.addresses if a.type == kind)
            if found:
                return found
        return ()

    @property
    def ready(self) -> bool:
        """The kubelet's Ready condition is True (a node without one is not ready)."""
        return any(c.type == "Ready" and c.status == "True" for c in self.status.conditions)


@record
class PodIP(Struct):
    ip: str


@record
class PodSpec(Struct):
    node_name: str | None = None
    host_network: bool = False


@record
class PodStatus(Struct):
    pod_ip: str | None = Field(default=None, alias="podIP")
    pod_ips: list[PodIP] = Field(default_factory=list, alias="podIPs")


@record
class Pod(Resource):
    """Only what network policy reads: the labels (its identity) and its addresses."""

    api_version: str = "v1"
    kind: str = "Pod"
    spec: PodSpec = Field(default_factory=PodSpec)
    status: PodStatus = Field(default_factory=PodStatus)

    @property
    def addresses(self) -> tuple[str, ...]:
        found = [p.ip for p in self.status.pod_ips]
        if self.status.pod_ip and self.status.pod_ip not in found:
            found.insert(0, self.status.pod_ip)
        return tuple(found)


@record
class EndpointPort(Struct):
    name: str | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    port: int | None = Field(default=None, ge=0, le=65535)
    app_protocol: str | None = None


@record
class EndpointSlice(Resource):
    api_version: str = "discovery.k8s.io/v1"
    kind: str = "EndpointSlice"
    address_type: Literal["IPv4", "IPv6", "FQDN"]
    endpoints: tuple[Endpoint, ...] = Field(default=(), max_length=1000)
    ports: tuple[EndpointPort, ...] = Field(default=(), max_length=100)

    @model_validator(mode="after")
    def _addresses_of_type(self) -> EndpointSlice:
        # The API server checks every address against addressType (Envoy would also
        # reject a socket address that is not an IP).
        for i, ep in enumerate(self.endpoints):
            for j, addr in enumerate(ep.addresses):
                why = _address_problem(self.address_type, addr)
                if why is not None:
                    raise ValueError(f"endpoints[{i}].addresses[{j}]: {addr!r} {why}")
        return self


def _address_problem(address_type: str, addr: str) -> str | None:
    if address_type == "FQDN":
        return None if dns1123_subdomain(addr) is None else "is not a valid FQDN"
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return f"must be a valid {address_type} address"
    if (ip.version == 4) != (address_type == "IPv4"):
        return f"must be a valid {address_type} address"
    return None


def _valid_base64(data: dict[str, str]) -> dict[str, str]:
    for key, value in data.items():
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"data[{key!r}] is not valid base64: {exc}") from None
    return data


@record
class Secret(Resource):
    """`data` keeps the base64 text (as Kubernetes serialises it); `stringData` is merged
    into it on parsing, as the API server does."""

    api_version: str = "v1"
    kind: str = "Secret"
    type: str = "Opaque"
    data: dict[str, str] = Field(default_factory=dict)
    immutable: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _merge_string_data(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and isinstance(raw.get("stringData"), dict):
            raw = dict(raw)
            string_data = raw.pop("stringData")
            data = dict(raw.get("data") or {})
            for key, value in string_data.items():
                text = value if isinstance(value, str) else str(value)
                data[key] = base64.b64encode(text.encode()).decode()
            raw["data"] = data
        return raw

    @field_validator("data")
    @classmethod
    def _decodable(cls, data: dict[str, str]) -> dict[str, str]:
        return _valid_base64(data)

    def decoded(self, key: str) -> bytes | None:
        value = self.data.get(key)
        return None if value is None else base64.b64decode(value)


@record
class ConfigMap(Resource):
    api_version: str = "v1"
    kind: str = "ConfigMap"
    data: dict[str, str] = Field(default_factory=dict)
    binary_data: dict[str, str] = Field(default_factory=dict)
    immutable: bool | None = None

    @field_validator("binary_data")
    @classmethod
    def _decodable(cls, data: dict[str, str]) -> dict[str, str]:
        return _valid_base64(data)
