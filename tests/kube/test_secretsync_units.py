"""gatewayAPI.secretsNamespace, the pure part: which Secrets are copied (those a
Gateway may use), what the copies look like, and how an agent reads a Gateway's
reference through its copy."""

from __future__ import annotations

import re

import yaml

from propylon.kube.secretsync import COPY_LABEL, copy_name, read_through, wanted_copies
from propylon.resources import ObjectKey, Resource, Secret, parse_object
from propylon.store import StoredObject

OBJECTS = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: apps}
spec:
  gatewayClassName: cilium
  listeners:
  - name: a
    protocol: HTTPS
    port: 443
    hostname: a.example.com
    tls: {certificateRefs: [{name: own}]}
  - name: b
    protocol: HTTPS
    port: 443
    hostname: b.example.com
    tls: {certificateRefs: [{name: granted, namespace: certs}, {name: refused, namespace: other}]}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: to-certs, namespace: certs}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: apps}]
  to: [{group: "", kind: Secret}]
---
apiVersion: v1
kind: Secret
metadata: {name: own, namespace: apps}
type: kubernetes.io/tls
data: {tls.crt: Y2VydA==, tls.key: a2V5}
---
apiVersion: v1
kind: Secret
metadata: {name: granted, namespace: certs}
type: kubernetes.io/tls
data: {tls.crt: Y2VydDI=, tls.key: a2V5Mg==}
---
apiVersion: v1
kind: Secret
metadata: {name: refused, namespace: other}
type: kubernetes.io/tls
data: {tls.crt: eA==, tls.key: eQ==}
---
apiVersion: v1
kind: Secret
metadata: {name: unreferenced, namespace: apps}
type: kubernetes.io/tls
data: {tls.crt: eA==, tls.key: eQ==}
"""


def objects() -> dict[ObjectKey, Resource]:
    out = {}
    for doc in yaml.safe_load_all(OBJECTS):
        obj = parse_object(doc)
        out[obj.key] = obj
    return out


def test_copies_of_the_secrets_gateways_may_use() -> None:
    copies = wanted_copies(objects(), "cilium-secrets")
    assert sorted(copies) == ["apps.own", "certs.granted"]  # not refused, not unreferenced
    own = copies["apps.own"]
    assert own["metadata"] == {
        "name": "apps.own",
        "namespace": "cilium-secrets",
        "labels": {COPY_LABEL: "true"},
        "annotations": {
            "propylon.io/source-namespace": "apps",
            "propylon.io/source-name": "own",
        },
    }
    assert own["type"] == "kubernetes.io/tls"
    assert own["data"] == {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}


def test_an_agent_reads_references_through_the_copies() -> None:
    everything = objects()
    # What an agent sees: everything but Secrets, and the copies in the secrets namespace.
    seen = {k: StoredObject(o) for k, o in everything.items() if k.kind != "Secret"}
    for name, doc in wanted_copies(everything, "cilium-secrets").items():
        seen[ObjectKey("Secret", "cilium-secrets", name)] = StoredObject(parse_object(doc))
    view = read_through(seen, "cilium-secrets")
    own = view[ObjectKey("Secret", "apps", "own")].resource
    assert isinstance(own, Secret) and own.data == {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}
    assert (own.metadata.namespace, own.metadata.name) == ("apps", "own")
    assert ObjectKey("Secret", "certs", "granted") in view
    assert ObjectKey("Secret", "other", "refused") not in view  # no copy: stays missing
    assert ObjectKey("Secret", "apps", "unreferenced") not in view


LISTENER_SETS = """
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: extra, namespace: team}
spec:
  parentRef: {name: gw, namespace: apps}
  listeners:
  - name: own
    protocol: HTTPS
    port: 443
    hostname: team.example.com
    tls: {certificateRefs: [{name: team-cert}, {name: granted, namespace: certs}]}
  - name: elsewhere
    protocol: HTTPS
    port: 443
    hostname: other.example.com
    tls: {certificateRefs: [{name: ls-granted, namespace: other}]}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: to-listener-sets, namespace: other}
spec:
  from: [{group: gateway.networking.k8s.io, kind: ListenerSet, namespace: team}]
  to: [{group: "", kind: Secret, name: ls-granted}]
---
apiVersion: v1
kind: Secret
metadata: {name: team-cert, namespace: team}
type: kubernetes.io/tls
data: {tls.crt: eA==, tls.key: eQ==}
---
apiVersion: v1
kind: Secret
metadata: {name: ls-granted, namespace: other}
type: kubernetes.io/tls
data: {tls.crt: eA==, tls.key: eQ==}
"""


def test_copies_of_the_secrets_listener_sets_may_use() -> None:
    objs = objects()
    for doc in yaml.safe_load_all(LISTENER_SETS):
        obj = parse_object(doc)
        objs[obj.key] = obj
    copies = wanted_copies(objs, "cilium-secrets")
    # a ListenerSet's own namespace, and a grant to kind ListenerSet
    assert sorted(copies) == ["apps.own", "certs.granted", "other.ls-granted", "team.team-cert"]
    without_grant = {k: o for k, o in objs.items() if k.name != "to-listener-sets"}
    assert "other.ls-granted" not in wanted_copies(without_grant, "cilium-secrets")


CLIENT_CERTS = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: apps}
spec:
  gatewayClassName: cilium
  tls: {backend: {clientCertificateRef: {name: client}}}
  listeners: [{name: http, protocol: HTTP, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: elsewhere, namespace: apps}
spec:
  gatewayClassName: cilium
  tls: {backend: {clientCertificateRef: {name: client, namespace: other}}}
  listeners: [{name: http, protocol: HTTP, port: 80}]
---
apiVersion: v1
kind: Secret
metadata: {name: client, namespace: apps}
type: kubernetes.io/tls
data: {tls.crt: Y2VydA==, tls.key: a2V5}
---
apiVersion: v1
kind: Secret
metadata: {name: client, namespace: other}
type: kubernetes.io/tls
data: {tls.crt: eA==, tls.key: eQ==}
"""


def test_the_backend_client_certificate_is_copied_and_read_through() -> None:
    """spec.tls.backend.clientCertificateRef: agents need that Secret too (without a
    ReferenceGrant, the other namespace's is not copied)."""
    everything = {}
    for doc in yaml.safe_load_all(CLIENT_CERTS):
        obj = parse_object(doc)
        everything[obj.key] = obj
    copies = wanted_copies(everything, "cilium-secrets")
    assert sorted(copies) == ["apps.client"]
    seen = {k: StoredObject(o) for k, o in everything.items() if k.kind != "Secret"}
    seen[ObjectKey("Secret", "cilium-secrets", "apps.client")] = StoredObject(
        parse_object(copies["apps.client"])
    )
    view = read_through(seen, "cilium-secrets")
    client = view[ObjectKey("Secret", "apps", "client")].resource
    assert isinstance(client, Secret) and client.data == {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}
    assert ObjectKey("Secret", "other", "client") not in view


def test_client_ca_secrets_are_copied() -> None:
    """A Gateway's frontend caCertificateRefs of kind Secret reach the agents too."""
    text = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: apps}
spec:
  gatewayClassName: cilium
  tls:
    frontend:
      default: {validation: {caCertificateRefs: [{group: "", kind: ConfigMap, name: cm}]}}
      perPort:
      - port: 8443
        tls: {validation: {caCertificateRefs: [{group: "", kind: Secret, name: cas}]}}
  listeners: [{name: https, protocol: HTTPS, port: 8443, tls: {certificateRefs: [{name: srv}]}}]
---
apiVersion: v1
kind: Secret
metadata: {name: cas, namespace: apps}
data: {ca.crt: eA==}
"""
    everything = {}
    for doc in yaml.safe_load_all(text):
        obj = parse_object(doc)
        everything[obj.key] = obj
    assert sorted(wanted_copies(everything, "cilium-secrets")) == ["apps.cas"]


def test_copy_names_never_collide() -> None:
    """Cilium's `<namespace>-<name>` maps `a-b/c` and `a/b-c` to one name; the copies here
    keep them apart, and both are served through their own copy."""
    text = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: a-b}
spec:
  gatewayClassName: cilium
  listeners: [{name: https, protocol: HTTPS, port: 443, tls: {certificateRefs: [{name: c}]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: a}
spec:
  gatewayClassName: cilium
  listeners: [{name: https, protocol: HTTPS, port: 443, tls: {certificateRefs: [{name: b-c}]}}]
---
apiVersion: v1
kind: Secret
metadata: {name: c, namespace: a-b}
type: kubernetes.io/tls
data: {tls.crt: b25l, tls.key: a2V5}
---
apiVersion: v1
kind: Secret
metadata: {name: b-c, namespace: a}
type: kubernetes.io/tls
data: {tls.crt: dHdv, tls.key: a2V5}
"""
    everything = {}
    for doc in yaml.safe_load_all(text):
        obj = parse_object(doc)
        everything[obj.key] = obj
    copies = wanted_copies(everything, "cilium-secrets")
    assert sorted(copies) == ["a-b.c", "a.b-c"]
    seen = {k: StoredObject(o) for k, o in everything.items() if k.kind != "Secret"}
    for name, doc in copies.items():
        seen[ObjectKey("Secret", "cilium-secrets", name)] = StoredObject(parse_object(doc))
    view = read_through(seen, "cilium-secrets")
    first = view[ObjectKey("Secret", "a-b", "c")].resource
    second = view[ObjectKey("Secret", "a", "b-c")].resource
    assert isinstance(first, Secret) and first.data["tls.crt"] == "b25l"
    assert isinstance(second, Secret) and second.data["tls.crt"] == "dHdv"


DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def test_copy_names_are_valid_and_distinct_at_the_length_limits() -> None:
    """A 63-character namespace and a 253-character name do not fit side by side: such a
    copy gets a hashed name (no dot, so never equal to a short one), still at most 253
    characters, still distinct for names that differ only past the cut."""
    namespace = "n" * 62 + "x"
    long_a = ("a" * 60 + ".") * 3 + "b" * 69  # 253 characters, dots inside
    long_b = long_a[:-1] + "c"
    pairs = [
        ("a-b", "c"),
        ("a", "b-c"),
        ("a", "b.c"),
        ("ab", "c"),
        (namespace, "short"),
        (namespace, long_a),
        (namespace, long_b),
        ("a", long_a),
        ("a-" + "b" * 61, long_a),
        ("a", "b" * 187 + "-x"),
    ]
    names = [copy_name(ns, name) for ns, name in pairs]
    assert len(set(names)) == len(pairs)
    for (ns, name), copy in zip(pairs, names, strict=True):
        assert len(copy) <= 253, copy
        assert DNS1123_SUBDOMAIN.fullmatch(copy), copy
        if len(ns) + 1 + len(name) <= 253:
            assert copy == f"{ns}.{name}"
        else:
            assert "." not in copy and copy.startswith(ns + "-"), copy
