"""Cluster resources: one per model Cluster (a Service port), endpoints by EDS."""

from __future__ import annotations

from google.protobuf.message import Message

from propylon import model as m
from propylon.envoy import _pb as pb
from propylon.envoy import _pb_stream as pbs
from propylon.envoy.access import add_backend_access

#: A weighted share whose backend could not be resolved goes to this cluster, which never
#: exists: Envoy answers it with 500 (``cluster_not_found_response_code``).
INVALID_BACKEND_CLUSTER = "propylon:invalid-backend"
CONNECT_TIMEOUT_MS = 5_000
SYSTEM_CA_FILE = "/etc/ssl/certs/ca-certificates.crt"


def build_cluster(c: m.Cluster, access: m.BackendAccess | None = None) -> Message:
    """`access`: network policy's `ingress` -> backend verdict (hook: `access.py`)."""
    tls = None
    h2 = c.protocol is m.AppProtocol.H2C
    if c.tls is not None:
        tls = pb.upstream_tls(
            sni=c.tls.sni,
            ca_pem=c.tls.ca_pem,
            ca_file=SYSTEM_CA_FILE,
            sans=list(c.tls.subject_alt_names),
            alpn=["h2"] if h2 else [],
            client_certificate=c.tls.client_certificate,
        )
    out = pb.cluster(name=c.name, connect_timeout_ms=CONNECT_TIMEOUT_MS, h2=h2, upstream_tls=tls)
    if c.weighted:
        pbs.locality_weighted(out)
    return add_backend_access(out, access)
