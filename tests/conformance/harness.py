"""The local stand-in for a cluster: `propylon run` plus echo backends plus generated objects.

What a conformance run on Kubernetes gets from the cluster, this module provides:

- the suite's manifests, read at run time from ``../shared/gateway-api/conformance``
  (``{GATEWAY_CLASS_NAME}`` substituted, the GatewayClass added), written into a directory
  that ``propylon run`` watches; applying and deleting a test's manifests is writing and
  removing its file;
- every Deployment replica becomes an echo backend in this process, on its own loopback
  address (``127.B.d.r``), listening on the container ports upstream's echo-basic uses
  (3000 HTTP, 3001 h2c, 8443 HTTPS; 3000 gRPC for ``GRPC_ECHO_SERVER``), with pod name
  ``<deployment>-<hash>-<suffix>`` and its namespace;
- EndpointSlices for every Service selecting such a Deployment (endpoint port = the
  Service's targetPort, which is what the backend listens on);
- the certificates the suite creates at setup (same Secret/ConfigMap names and SANs).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import io
import ipaddress
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from propylon.state import ApiClient
from propylon.testing.launcher import ProcessExited, RunningPropylon, launch_propylon

REPO = Path(__file__).resolve().parents[2]


def _shared() -> Path:
    """`$PROPYLON_SHARED`, else `shared/` beside the checkout (CI), else /work/shared
    (the same rule as tests/shared_paths.py, which this package cannot import when run
    with `python -m tests.conformance`)."""
    for base in (os.environ.get("PROPYLON_SHARED"), REPO.parent / "shared", "/work/shared"):
        if base and (Path(base) / "gateway-api").is_dir():
            return Path(base)
    return REPO.parent / "shared"  # absent: the runner fails naming this path


SHARED = _shared() / "gateway-api" / "conformance"
GATEWAY_CLASS = "propylon"
CONTROLLER = "io.cilium/gateway-controller"
NAMESPACES = (
    "gateway-conformance-infra",
    "gateway-conformance-app-backend",
    "gateway-conformance-web-backend",
)
# Kinds the cluster would act on but Propylon does not read: stood in for or not modelled.
_NOT_APPLIED = {"Deployment", "Pod", "ServiceAccount", "UDPRoute", "TCPRoute"}

T = TypeVar("T")


class Failure(AssertionError):
    """A conformance expectation did not hold."""


def wait_for(
    predicate: Callable[[], T | None],
    *,
    timeout: float = 30.0,
    what: str = "",
    interval: float = 0.05,
) -> T:
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last = value
        except ProcessExited:
            raise
        except Failure as exc:
            last = exc
        except Exception as exc:  # not ready yet
            last = exc
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout:g}s waiting for {what}: {last!r}")
        time.sleep(interval)


def load_documents(path: Path) -> list[dict[str, Any]]:
    text = path.read_text().replace("{GATEWAY_CLASS_NAME}", GATEWAY_CLASS)
    text = text.replace("{GATEWAY_CONTROLLER_NAME}", CONTROLLER)
    return [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]


def suite_file(name: str) -> Path:
    return SHARED / "tests" / name


# --- certificates (as conformance/utils/kubernetes/certificate.go) ---------------------------


@dataclass
class CertificateAuthority:
    cert_pem: bytes
    key_pem: bytes
    cert: Any
    key: Any


def _rsa_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )


def make_ca() -> CertificateAuthority:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = _rsa_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Kubernetes Gateway API"),
            x509.NameAttribute(NameOID.COMMON_NAME, "gatewayapi"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(2024)
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(
        cert.public_bytes(serialization.Encoding.PEM), _pem_key(key), cert, key
    )


def make_cert(hosts: Iterable[str], ca: CertificateAuthority | None = None) -> tuple[bytes, bytes]:
    """A server certificate for ``hosts`` (IPs, DNS names, URIs), self-signed or by ``ca``."""
    import re

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = _rsa_key()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme Co"),
            x509.NameAttribute(NameOID.COMMON_NAME, "default"),
        ]
    )
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            continue
        except ValueError:
            pass
        if re.fullmatch(r"(\*|[a-zA-Z0-9*]([-a-zA-Z0-9.*]*[a-zA-Z0-9])?)", host):
            sans.append(x509.DNSName(host))
        else:
            sans.append(x509.UniformResourceIdentifier(host))
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject if ca else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
    )
    cert = builder.sign(ca.key if ca else key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def tls_secret(namespace: str, name: str, cert: bytes, key: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": cert.decode(), "tls.key": key.decode()},
    }


def ca_configmap(namespace: str, name: str, ca: CertificateAuthority) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"ca.crt": ca.cert_pem.decode(), "key.crt": ca.key_pem.decode()},
    }


@dataclass
class Certificates:
    objects: list[dict[str, Any]]
    ca: CertificateAuthority
    pem: dict[tuple[str, str], tuple[bytes, bytes]]  # (namespace, secret) -> (cert, key)


def suite_certificates() -> Certificates:
    """The Secrets and ConfigMaps the suite creates at setup (suite.go, Setup)."""
    objects: list[dict[str, Any]] = []
    pem: dict[tuple[str, str], tuple[bytes, bytes]] = {}

    def secret(
        ns: str, name: str, hosts: list[str], ca: CertificateAuthority | None = None
    ) -> None:
        cert, key = make_cert(hosts, ca)
        pem[(ns, name)] = (cert, key)
        objects.append(tls_secret(ns, name, cert, key))

    secret("gateway-conformance-web-backend", "certificate", ["*"])
    secret("gateway-conformance-infra", "tls-validity-checks-certificate", ["*", "*.org"])
    secret("gateway-conformance-infra", "tls-passthrough-checks-certificate", ["abc.example.com"])
    secret(
        "gateway-conformance-app-backend", "tls-passthrough-checks-certificate", ["abc.example.com"]
    )
    ca = make_ca()
    objects.append(ca_configmap("gateway-conformance-infra", "tls-checks-ca-certificate", ca))
    secret(
        "gateway-conformance-infra",
        "tls-checks-certificate",
        ["abc.example.com", "spiffe://abc.example.com/test-identity", "other.example.com"],
        ca,
    )
    objects.append(ca_configmap("gateway-conformance-infra", "mismatch-ca-certificate", make_ca()))
    return Certificates(objects, ca, pem)


# --- backends ----------


@dataclass
class Pod:
    deployment: str
    namespace: str
    name: str
    ip: str
    labels: dict[str, str]
    log: io.StringIO = field(default_factory=io.StringIO)


def _pod_name(deployment: str, namespace: str, replica: int) -> str:
    digest = hashlib.sha256(f"{namespace}/{deployment}".encode()).hexdigest()
    suffix = hashlib.sha256(f"{namespace}/{deployment}/{replica}".encode()).hexdigest()
    return f"{deployment}-{digest[:10]}-{suffix[:5]}"


class BackendHost:
    """Echo backends (one per Deployment replica) served from one asyncio loop in a thread."""

    def __init__(self, block: int) -> None:
        self.block = block
        self.pods: list[Pod] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._closers: list[Callable[[], Any]] = []
        self._deployments = 0

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def add_deployment(self, doc: dict[str, Any], certs: Certificates) -> list[Pod]:
        from propylon.demo.echo import EchoContext, EchoServer, server_tls_context
        from propylon.demo.echo.grpcecho import serve_grpc_echo
        from propylon.demo.echo.h2c import serve_h2c

        meta = doc["metadata"]
        name, namespace = meta["name"], meta.get("namespace", "default")
        spec = doc.get("spec", {})
        template = spec.get("template", {})
        labels = dict(template.get("metadata", {}).get("labels", {}))
        containers = template.get("spec", {}).get("containers", [])
        if not containers or "echo-basic" not in str(containers[0].get("image", "")):
            return []  # e.g. coredns (UDPRoute is not in the profiles run here)
        env = {e["name"]: e.get("value") for e in containers[0].get("env", [])}
        secret_name = ""
        for volume in template.get("spec", {}).get("volumes", []):
            if "secret" in volume:
                secret_name = volume["secret"]["secretName"]
        index = self._deployments
        self._deployments += 1
        pods = []
        for replica in range(int(spec.get("replicas", 1))):
            ip = f"127.{self.block}.{index + 1}.{replica + 1}"
            pod = Pod(name, namespace, _pod_name(name, namespace, replica), ip, labels)
            context = EchoContext(namespace=namespace, pod=pod.name)
            if env.get("GRPC_ECHO_SERVER"):
                server, _ = self._run(serve_grpc_echo(ip, 3000, context))
                self._closers.append(lambda s=server: s.stop(None))
            else:
                echo = EchoServer(context, log=pod.log)
                self._run(echo.start(ip, 3000))
                self._closers.append(echo.close)
                h2c = self._run(serve_h2c(ip, 3001, echo))
                self._closers.append(h2c.close)
                if env.get("TLS_SERVER_CERT") and secret_name:
                    cert, key = certs.pem[(namespace, secret_name)]
                    # The context reads the files at once; they need not outlive it.
                    with tempfile.TemporaryDirectory(prefix="propylon-conf-tls-") as folder:
                        tmp = Path(folder)
                        (tmp / "crt").write_bytes(cert)
                        (tmp / "key").write_bytes(key)
                        tls = server_tls_context(str(tmp / "crt"), str(tmp / "key"))
                    secure = EchoServer(context, log=pod.log)
                    self._run(secure.start(ip, 8443, ssl_context=tls))
                    self._closers.append(secure.close)
            pods.append(pod)
        self.pods.extend(pods)
        return pods

    def selecting(self, namespace: str, selector: dict[str, str]) -> list[Pod]:
        return [
            p
            for p in self.pods
            if p.namespace == namespace
            and selector
            and all(p.labels.get(k) == v for k, v in selector.items())
        ]

    def pods_of(self, namespace: str, deployment: str) -> list[Pod]:
        return [p for p in self.pods if p.namespace == namespace and p.deployment == deployment]

    def close(self) -> None:
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):
                self._run(closer())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


def endpoint_slices(services: Iterable[dict[str, Any]], host: BackendHost) -> list[dict[str, Any]]:
    """EndpointSlices for Services selecting stood-in Deployments (endpoint port = targetPort)."""
    out = []
    for svc in services:
        meta = svc["metadata"]
        spec = svc.get("spec", {})
        pods = host.selecting(meta.get("namespace", "default"), spec.get("selector") or {})
        if not pods:
            continue
        ports = []
        for port in spec.get("ports", []):
            target = port.get("targetPort", port["port"])
            entry: dict[str, Any] = {
                "name": port.get("name", ""),
                "port": int(target),
                "protocol": port.get("protocol", "TCP"),
            }
            if port.get("appProtocol"):
                entry["appProtocol"] = port["appProtocol"]
            ports.append(entry)
        out.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{meta['name']}-local",
                    "namespace": meta.get("namespace", "default"),
                    "labels": {"kubernetes.io/service-name": meta["name"]},
                },
                "addressType": "IPv4",
                "ports": ports,
                "endpoints": [
                    {
                        "addresses": [p.ip],
                        "conditions": {"ready": True, "serving": True, "terminating": False},
                        "targetRef": {"kind": "Pod", "name": p.name, "namespace": p.namespace},
                    }
                    for p in pods
                ],
            }
        )
    return out


# --- propylon ----------


def _dump(docs: Iterable[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(list(docs), sort_keys=False)


class Cluster:
    """`propylon run` with the suite's base manifests and backends: what a test runs against."""

    def __init__(self, workdir: Path | None = None, *, verbose: bool = False) -> None:
        self.verbose = verbose
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="propylon-conformance-"))
        self.manifests = self.workdir / "manifests"
        self.state_dir = self.workdir / "state"
        self.log_path = self.workdir / "state.log"  # where the launcher writes its output
        self.manifests.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        self.backend_block = 20 + pid % 70
        self.pool = f"127.{100 + pid % 100}.{200 + (pid // 100) % 50}.0/24"
        self.running: RunningPropylon | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.backends = BackendHost(self.backend_block)
        self.certs: Certificates | None = None
        self._applied: dict[str, list[dict[str, Any]]] = {}

    # lifecycle

    def start(self) -> None:
        self.certs = suite_certificates()
        base = load_documents(SHARED / "base" / "manifests.yaml")
        for doc in base:
            if doc["kind"] == "Deployment":
                self.backends.add_deployment(doc, self.certs)
        gateway_class = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": GATEWAY_CLASS},
            "spec": {"controllerName": CONTROLLER},
        }
        self._write("00-gatewayclass", [gateway_class])
        self._write("10-base", self._applicable(base))
        self._write("20-setup", self.certs.objects)
        self._write(
            "30-endpoints",
            endpoint_slices((d for d in base if d["kind"] == "Service"), self.backends),
        )
        self.running = launch_propylon(self.manifests, self.state_dir, pool=self.pool, cwd=REPO)
        self.process = self.running.process
        wait_for(self.running.up, timeout=60, what="propylon to start")
        for gw in ("same-namespace", "all-namespaces", "backend-namespaces"):
            wait_for(
                lambda gw=gw: self.gateway_condition(
                    ("gateway-conformance-infra", gw), "Programmed"
                ),
                timeout=60,
                what=f"base Gateway {gw} Programmed",
            )
        self.wait_synced()

    def stop(self) -> None:
        if self.running is not None:
            self.running.stop()
        self.backends.close()
        if self._own_workdir and not os.environ.get("PROPYLON_CONFORMANCE_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # manifests

    @staticmethod
    def _applicable(docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        return [d for d in docs if d.get("kind") not in _NOT_APPLIED]

    def _write(self, name: str, docs: Iterable[dict[str, Any]]) -> None:
        path = self.manifests / f"{name}.yaml"
        tmp = self.manifests / f".{name}.tmp"
        tmp.write_text(_dump(docs))
        os.replace(tmp, path)

    def apply(self, name: str, docs: list[dict[str, Any]]) -> None:
        """Create or replace the objects of manifest ``name`` (like kubectl apply of one file)."""
        services = [d for d in docs if d.get("kind") == "Service"]
        slices = endpoint_slices(services, self.backends)
        full = [*self._applicable(docs), *slices]
        self._applied[name] = full
        self._write(f"50-{name}", full)

    def apply_suite_file(self, filename: str) -> list[dict[str, Any]]:
        docs = load_documents(suite_file(filename))
        self.apply(filename.removesuffix(".yaml"), docs)
        return docs

    def delete(self, name: str) -> None:
        path = self.manifests / f"50-{name}.yaml"
        docs = self._applied.pop(name, [])
        if path.exists():
            path.unlink()
        # wait until the objects are gone, like the suite's cleanup
        for doc in docs[:3]:
            meta = doc["metadata"]
            wait_for(
                lambda doc=doc, meta=meta: (
                    not self.get(doc["kind"], meta.get("namespace"), meta["name"])
                ),
                timeout=30,
                what=f"{doc['kind']} {meta['name']} deleted",
            )

    def applied(self, name: str) -> list[dict[str, Any]]:
        return self._applied[name]

    # state

    @property
    def api(self) -> ApiClient:
        return ApiClient(self.state_dir / "api.sock")

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        kwargs: dict[str, Any] = {"name": name}
        if namespace is not None and kind not in ("GatewayClass", "Namespace"):
            kwargs["namespace"] = namespace
        items = self.api.objects(kind, **kwargs)["items"]
        return dict(items[0]) if items else None

    def must_get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.get(kind, namespace, name)
        if obj is None:
            raise Failure(f"{kind} {namespace}/{name} not found")
        return obj

    def gateway_condition(self, gw: tuple[str, str], type_: str) -> bool:
        obj = self.get("Gateway", gw[0], gw[1])
        if not obj:
            return False
        for cond in obj.get("status", {}).get("conditions", []):
            if cond["type"] == type_ and cond["status"] == "True":
                return True
        return False

    def wait_synced(self, timeout: float = 30) -> None:
        def synced() -> bool:
            health = self.api.healthz()
            version = health["xds"]["version"]
            acked = health["xds"]["acked"]
            return bool(acked) and all(v >= version for v in acked.values())

        wait_for(synced, timeout=timeout, what="Envoy to acknowledge the configuration")

    def pod_logs(self, namespace: str, deployment: str) -> list[str]:
        return [p.log.getvalue() for p in self.backends.pods_of(namespace, deployment)]


@contextlib.contextmanager
def running_cluster(verbose: bool = False) -> Iterator[Cluster]:
    cluster = Cluster(verbose=verbose)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
