"""gatewayAPI.secretsNamespace: the TLS Secrets that Gateways reference, copied into one
namespace (`cilium-secrets` by default) that the agents read instead of every Secret.

The copy of Secret `<namespace>/<name>` is `<secrets namespace>/<namespace>.<name>`
(`copy_name`). Cilium names it `<namespace>-<name>`, which is not injective (`a-b/c` and
`a/b-c` would share `a-b-c`); a namespace has no dot, so the first dot here separates the
two parts unambiguously.
The operator writes the copies (`sync: true`; with `sync: false` someone else keeps them
there under the same names); an agent watches only that namespace and reads a Gateway's
certificate reference `<namespace>/<name>` through its copy (`read_through`), so the pure
core sees the Secrets where the Gateways said they are.

Pure functions here; the operator's writer is `propylon.kube.secretcopies.SecretCopies`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping

from propylon.gatewayapi.index import Index
from propylon.gatewayapi.referencegrants import permitted
from propylon.kube.api import Obj
from propylon.resources import (
    GATEWAY_GROUP,
    Gateway,
    ListenerSet,
    ObjectKey,
    Resource,
    Secret,
)
from propylon.resources.common import SecretObjectReference
from propylon.resources.gateway import CACertificateRef
from propylon.store import StoredObject

#: On every copy the operator writes: which copies are its own to update and delete.
COPY_LABEL = "propylon.io/secret-sync"
SOURCE_NAMESPACE = "propylon.io/source-namespace"
SOURCE_NAME = "propylon.io/source-name"


#: A Secret's name is a DNS-1123 subdomain of at most 253 characters.
MAX_NAME = 253


def copy_name(namespace: str, name: str) -> str:
    """The copy's name, distinct for distinct (namespace, name) and a valid Secret name:
    `<namespace>.<name>` when that fits in 253 characters, else a name without any dot
    (so never one of the first kind): the readable start of both parts and the SHA-256
    of `<namespace>/<name>` (64 hex digits)."""
    direct = f"{namespace}.{name}"
    if len(direct) <= MAX_NAME:
        return direct
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()
    start = f"{namespace}-{name.replace('.', '-')}"[: MAX_NAME - len(digest) - 1].rstrip("-")
    return f"{start}-{digest}"


def referenced_secrets(objects: Mapping[ObjectKey, Resource]) -> Iterator[tuple[str, str]]:
    """(namespace, name) of every Secret a listener's certificateRefs (or a Gateway's
    spec.tls: backend clientCertificateRef, frontend caCertificateRefs) names and may use
    (its own namespace, or another one's with a ReferenceGrant): the listeners of
    Gateways and of ListenerSets (whose grants are from kind ListenerSet). Every one
    counts, whatever its class or whether it is attached: a copy is only a copy."""
    index: Index | None = None
    seen: set[tuple[str, str]] = set()
    for obj in objects.values():
        if isinstance(obj, Gateway):
            group, listeners = GATEWAY_GROUP, obj.spec.listeners
        elif isinstance(obj, ListenerSet):
            group, listeners = obj.group, obj.spec.listeners
        else:
            continue
        home = obj.metadata.namespace
        refs: list[SecretObjectReference | CACertificateRef] = [
            ref for li in listeners if li.tls is not None for ref in li.tls.certificate_refs
        ]
        if isinstance(obj, Gateway) and obj.spec.tls is not None:
            # The certificate the Gateway presents to TLS backends, and client CAs kept
            # in Secrets (the ConfigMap refs among them are skipped below).
            backend, frontend = obj.spec.tls.backend, obj.spec.tls.frontend
            if backend is not None and backend.client_certificate_ref is not None:
                refs.append(backend.client_certificate_ref)
            if frontend is not None:
                for tls in (frontend.default, *(p.tls for p in frontend.per_port)):
                    refs.extend(tls.validation.ca_certificate_refs if tls.validation else ())
        for ref in refs:
            if (ref.group or "") != "" or (ref.kind or "Secret") != "Secret":
                continue
            ns = ref.namespace or home
            if (ns, ref.name) in seen:
                continue
            if ns != home:
                index = index or Index(objects)
                if not permitted(
                    index,
                    from_group=group,
                    from_kind=obj.kind,
                    from_namespace=home,
                    to_group="",
                    to_kind="Secret",
                    to_namespace=ns,
                    to_name=ref.name,
                ):
                    continue
            seen.add((ns, ref.name))
            yield ns, ref.name


def wanted_copies(objects: Mapping[ObjectKey, Resource], secrets_namespace: str) -> dict[str, Obj]:
    """Copy name -> the Secret the operator keeps in `secrets_namespace` (JSON-ready)."""
    out: dict[str, Obj] = {}
    for ns, name in referenced_secrets(objects):
        if ns == secrets_namespace:
            continue  # already there
        secret = objects.get(ObjectKey("Secret", ns, name))
        if not isinstance(secret, Secret):
            continue  # missing: the Gateway's status says so; nothing to copy
        copy = copy_name(ns, name)
        out[copy] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": copy,
                "namespace": secrets_namespace,
                "labels": {COPY_LABEL: "true"},
                "annotations": {SOURCE_NAMESPACE: ns, SOURCE_NAME: name},
            },
            "type": secret.type,
            "data": dict(secret.data),
        }
    return out


def read_through(
    objects: Mapping[ObjectKey, StoredObject], secrets_namespace: str
) -> dict[ObjectKey, StoredObject]:
    """The Secrets the Gateways reference, as the agent sees them through their copies
    in `secrets_namespace` (under the original keys); the rest of `objects` unchanged.
    A reference without a copy stays missing (the Gateway's status says so). (The agent
    keeps this with memory: `propylon.kube.secretview`.)"""
    resources = {k: o.resource for k, o in objects.items()}
    out = dict(objects)
    for ns, name in referenced_secrets(resources):
        if ns == secrets_namespace:
            continue
        copy = copy_of(objects, secrets_namespace, ns, name)
        if copy is not None:
            out[ObjectKey("Secret", ns, name)] = as_original(copy, ns, name)
    return out


def copy_of(
    objects: Mapping[ObjectKey, StoredObject], secrets_namespace: str, ns: str, name: str
) -> StoredObject | None:
    """The copy in `secrets_namespace` of Secret `ns/name`, if there is one."""
    copy = objects.get(ObjectKey("Secret", secrets_namespace, copy_name(ns, name)))
    return copy if copy is not None and isinstance(copy.resource, Secret) else None


def as_original(copy: StoredObject, ns: str, name: str) -> StoredObject:
    """A copy seen as the Secret it was copied from (its namespace and name)."""
    meta = copy.resource.metadata.model_copy(update={"namespace": ns, "name": name})
    return StoredObject(copy.resource.model_copy(update={"metadata": meta}), copy.origin)
