"""gatewayAPI.secretsNamespace.sync against a real API server: the operator copies the
TLS Secret a Gateway references into the secrets namespace (`<namespace>.<name>`),
follows its changes, and deletes the copy once no Gateway references it."""

from __future__ import annotations

from typing import Any

from kube_controlplane import ControlPlane
from kube_eventually import eventually
from operators import running_operator

from propylon.kube import kinds
from propylon.kube.api import KubeApi

SECRETS = "cilium-secrets"


def _secret(namespace: str, cert: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "site", "namespace": namespace},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": cert, "tls.key": "a2V5"},
    }


def _gateway(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "tls", "namespace": namespace},
        "spec": {
            "gatewayClassName": "cilium",
            "listeners": [
                {
                    "name": "https",
                    "protocol": "HTTPS",
                    "port": 443,
                    "tls": {"certificateRefs": [{"name": "site"}]},
                }
            ],
        },
    }


async def test_operator_keeps_copies_of_referenced_secrets(
    api: KubeApi, controlplane: ControlPlane, namespace: str
) -> None:
    controlplane.kubectl("create", "namespace", SECRETS, check=False)
    copy_name = f"{namespace}.site"
    await api.create(kinds.SECRET, _secret(namespace, "b25l"), namespace)
    # A copy under the name earlier versions gave it (Cilium's `<namespace>-<name>`).
    old = _secret(SECRETS, "b25l")
    old["metadata"].update(name=f"{namespace}-site", labels={"propylon.io/secret-sync": "true"})
    await api.create(kinds.SECRET, old, SECRETS)
    async with running_operator(controlplane.kubeconfig, namespace):

        async def copy(cert: str | None) -> bool:
            obj = await api.get(kinds.SECRET, copy_name, SECRETS)
            if cert is None:
                return obj is None
            return obj is not None and (obj.get("data") or {}).get("tls.crt") == cert

        # Nothing references it yet: no copy.
        assert await copy(None)
        await api.create(kinds.GATEWAY, _gateway(namespace), namespace)
        await eventually(lambda: copy("b25l"), what="the copy")

        async def old_gone() -> bool:
            return await api.get(kinds.SECRET, f"{namespace}-site", SECRETS) is None

        await eventually(old_gone, what="the copy under the old name deleted")
        obj = await api.get(kinds.SECRET, copy_name, SECRETS)
        assert obj is not None
        assert obj["type"] == "kubernetes.io/tls"
        assert obj["metadata"]["annotations"] == {
            "propylon.io/source-namespace": namespace,
            "propylon.io/source-name": "site",
        }
        # The source changes (a renewed certificate): the copy follows.
        await api.patch(kinds.SECRET, "site", {"data": {"tls.crt": "dHdv"}}, namespace=namespace)
        await eventually(lambda: copy("dHdv"), what="the copy updated")
        # Removed by hand: it comes back.
        await api.delete(kinds.SECRET, copy_name, SECRETS)
        await eventually(lambda: copy("dHdv"), what="the copy restored")
        # No Gateway references it any more: the copy goes.
        await api.delete(kinds.GATEWAY, "tls", namespace)
        await eventually(lambda: copy(None), what="the copy deleted")
        # A ListenerSet's listener references it: the copy comes back (its agents serve it).
        listener_set = {
            "apiVersion": "gateway.networking.x-k8s.io/v1alpha1",
            "kind": "XListenerSet",
            "metadata": {"name": "extra", "namespace": namespace},
            "spec": {
                "parentRef": {"name": "tls"},
                "listeners": _gateway(namespace)["spec"]["listeners"],
            },
        }
        await api.create(kinds.X_LISTENER_SET, listener_set, namespace)
        await eventually(lambda: copy("dHdv"), what="the copy for the ListenerSet")
