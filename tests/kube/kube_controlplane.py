"""A real kube-apiserver (and etcd, optionally kube-controller-manager) on loopback,
for the Kubernetes-mode tests until the dev cluster's fixture is on main.

Binaries: those of the dev cluster (`binaries_dir`). Every process is stopped by its PID.
The dev cluster itself (tests/devcluster_fixture.py) runs nodes and pods; these tests
need only the control plane, on loopback, and an etcd they can compact.
"""

from __future__ import annotations

import datetime
import os
import shutil
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from free_ports import free_port

BIN_ENV = "PROPYLON_KUBE_BIN"


def binaries_dir() -> Path | None:
    """$PROPYLON_KUBE_BIN, else the dev cluster's build (`python -m devcluster build`,
    which `dev.py test` runs), else its first warm build."""
    candidates = [os.environ.get(BIN_ENV)]
    try:
        from devcluster.build import binaries

        candidates.append(str(binaries().folder))
    except ImportError:
        pass
    candidates.append(str(Path.home() / ".cache/propylon-devcluster/warm"))
    for candidate in candidates:
        if candidate and (Path(candidate) / "kube-apiserver").exists():
            return Path(candidate)
    return None


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _cert(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    *,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
    client: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if not ca:
        usage = x509.oid.ExtendedKeyUsageOID
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([usage.CLIENT_AUTH if client else usage.SERVER_AUTH]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


@dataclass
class ControlPlane:
    """A running control plane; `kubeconfig` is cluster-admin (system:masters)."""

    workdir: Path
    url: str
    kubeconfig: Path
    bindir: Path
    ca_cert: Path
    ca_key: Path
    etcd_url: str = ""
    pids: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    argvs: dict[str, list[str]] = field(default_factory=dict)

    def launch(self, name: str, argv: list[str]) -> None:
        self.argvs[name] = argv
        log = (self.workdir / "logs" / f"{name}.log").open("ab")
        self.pids[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def restart(self, name: str) -> None:
        """Stop one process (SIGTERM) and start it again with the same arguments; for
        the API server, wait until it is ready again."""
        self.stop_process(name)
        self.launch(name, self.argvs[name])
        if name == "kube-apiserver":
            _wait_ready(
                self.url,
                self.ca_cert,
                self.workdir / "admin.crt",
                self.workdir / "admin.key",
                time.monotonic() + 90,
            )

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        proc = subprocess.run(
            [str(self.bindir / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr}")
        return proc.stdout

    def user_kubeconfig(self, name: str, groups: tuple[str, ...] = ()) -> Path:
        """A kubeconfig for user `name` (client certificate), for RBAC tests."""
        ca_key = serialization.load_pem_private_key(self.ca_key.read_bytes(), None)
        ca = x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
        key = _key()
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, name)]
        attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
        cert = _cert(x509.Name(attrs), key, ca.subject, ca_key, client=True)  # type: ignore[arg-type]
        return _write_kubeconfig(self.workdir, name, self.url, self.ca_cert, cert, key)

    def compact_etcd(self) -> int:
        """Compact etcd at its current revision (older resourceVersions become 410 Gone
        for watches); returns the revision."""
        import base64
        import json

        def post(path: str, body: dict[str, object]) -> dict[str, object]:
            req = urllib.request.Request(
                f"{self.etcd_url}{path}", data=json.dumps(body).encode(), method="POST"
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                data: dict[str, object] = json.loads(resp.read())
                return data

        header = post("/v3/kv/range", {"key": base64.b64encode(b"/").decode()})["header"]
        revision = int(header["revision"])  # type: ignore[index]
        post("/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision

    def stop_process(self, name: str) -> None:
        proc = self.pids.pop(name, None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop(self) -> None:
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            self.stop_process(name)


def _write_kubeconfig(
    workdir: Path, name: str, url: str, ca: Path, cert: x509.Certificate, key: rsa.RSAPrivateKey
) -> Path:
    cert_path = workdir / f"{name.replace(':', '_')}.crt"
    key_path = workdir / f"{name.replace(':', '_')}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(_pem_key(key))
    path = workdir / f"{name.replace(':', '_')}.kubeconfig"
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {{server: "{url}", certificate-authority: "{ca}"}}
users:
- name: {name}
  user: {{client-certificate: "{cert_path}", client-key: "{key_path}"}}
contexts:
- name: test
  context: {{cluster: test, user: "{name}", namespace: default}}
current-context: test
"""
    )
    return path


def _wait_ready(url: str, ca: Path, cert: Path, key: Path, deadline: float) -> None:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.load_cert_chain(str(cert), str(key))
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", context=ctx, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise TimeoutError(f"kube-apiserver not ready: {last}")


def start(workdir: Path, bindir: Path, *, controller_manager: bool = False) -> ControlPlane:
    workdir.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca = _cert(_name("propylon-test-ca"), ca_key, _name("propylon-test-ca"), ca_key, ca=True)
    (workdir / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (workdir / "ca.key").write_bytes(_pem_key(ca_key))
    srv_key = _key()
    sans: list[x509.GeneralName] = [
        x509.IPAddress(ip_address("127.0.0.1")),
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes.default.svc"),
    ]
    srv = _cert(_name("kube-apiserver"), srv_key, ca.subject, ca_key, sans=sans)
    (workdir / "apiserver.crt").write_bytes(srv.public_bytes(serialization.Encoding.PEM))
    (workdir / "apiserver.key").write_bytes(_pem_key(srv_key))
    sa_key = _key()
    (workdir / "sa.key").write_bytes(_pem_key(sa_key))
    (workdir / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    admin_key = _key()
    admin = _cert(
        _name("propylon-test-admin", "system:masters"), admin_key, ca.subject, ca_key, client=True
    )
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    url = f"https://127.0.0.1:{api_port}"
    kubeconfig = _write_kubeconfig(workdir, "admin", url, workdir / "ca.crt", admin, admin_key)
    server = ControlPlane(
        workdir,
        url,
        kubeconfig,
        bindir,
        workdir / "ca.crt",
        workdir / "ca.key",
        etcd_url=f"http://127.0.0.1:{etcd_port}",
    )
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    try:
        server.launch(
            "etcd",
            [
                str(bindir / "etcd"),
                "--data-dir",
                str(workdir / "etcd"),
                "--listen-client-urls",
                f"http://127.0.0.1:{etcd_port}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{etcd_port}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{peer_port}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{peer_port}",
                "--initial-cluster",
                f"default=http://127.0.0.1:{peer_port}",
                "--log-level",
                "warn",
            ],
        )
        server.launch(
            "kube-apiserver",
            [
                str(bindir / "kube-apiserver"),
                "--etcd-servers",
                f"http://127.0.0.1:{etcd_port}",
                "--bind-address",
                "127.0.0.1",
                "--advertise-address",
                "127.0.0.1",
                "--secure-port",
                str(api_port),
                "--tls-cert-file",
                str(workdir / "apiserver.crt"),
                "--tls-private-key-file",
                str(workdir / "apiserver.key"),
                "--client-ca-file",
                str(workdir / "ca.crt"),
                "--service-account-key-file",
                str(workdir / "sa.pub"),
                "--service-account-signing-key-file",
                str(workdir / "sa.key"),
                "--service-account-issuer",
                "https://kubernetes.default.svc",
                "--authorization-mode",
                "RBAC",
                "--service-cluster-ip-range",
                "198.19.0.0/16",
                "--disable-admission-plugins",
                "ServiceAccount",
                # ConfigMaps are watched straight from etcd, so that a compaction
                # makes an old resourceVersion 410 Gone (the reflector tests need it).
                "--watch-cache-sizes",
                "configmaps#0",
            ],
        )
        _wait_ready(
            url,
            workdir / "ca.crt",
            workdir / "admin.crt",
            workdir / "admin.key",
            time.monotonic() + 90,
        )
        if controller_manager:
            server.launch(
                "kube-controller-manager",
                [
                    str(bindir / "kube-controller-manager"),
                    "--kubeconfig",
                    str(kubeconfig),
                    "--bind-address",
                    "127.0.0.1",
                    "--secure-port",
                    str(free_port()),
                    "--controllers",
                    "garbagecollector,namespace",
                    "--leader-elect=false",
                    "--use-service-account-credentials=false",
                ],
            )
    except BaseException:
        server.stop()
        raise
    return server


def serve_temporarily(workdir: Path) -> Iterator[ControlPlane]:
    bindir = binaries_dir()
    if bindir is None:
        raise FileNotFoundError("kube-apiserver not found")
    server = start(workdir, bindir, controller_manager=True)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir / "etcd", ignore_errors=True)
