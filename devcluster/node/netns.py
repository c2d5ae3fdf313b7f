"""Pod network namespaces and their veth into the node's bridge, with iproute2's ``ip``.

``ip`` is the tool an operator would use to look at the result, so the agent uses it too
(one subprocess per step; pod start is not a hot path)."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

NETNS_DIR = Path("/run/netns")


class CommandFailed(Exception):
    pass


async def run(*argv: str, check: bool = True) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if check and process.returncode != 0:
        raise CommandFailed(f"{' '.join(argv)}: {err.decode().strip() or process.returncode}")
    return out.decode()


def pod_netns_name(node_name: str, pod_uid: str) -> str:
    return f"pdc-pod-{node_name}-{pod_uid[:8]}"


def host_veth_name(pod_uid: str) -> str:
    return f"pv-{pod_uid[:8]}"  # interface names are at most 15 characters


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def list_netns(prefix: str) -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))


async def create_pod_network(
    netns: str,
    veth: str,
    bridge: str,
    address: ipaddress.IPv4Address,
    network: ipaddress.IPv4Network,
    gateway: ipaddress.IPv4Address,
) -> None:
    """netns with eth0 = address/prefix, default route via the bridge; idempotent, so a
    half-made namespace from a killed agent is finished rather than duplicated."""
    if not netns_exists(netns):
        await run("ip", "netns", "add", netns)
    links = await run("ip", "-n", netns, "-o", "link", "show")
    if " eth0@" not in links:
        await run("ip", "link", "del", veth, check=False)
        await run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
    await run("ip", "link", "set", veth, "master", bridge, "up")
    await run("ip", "-n", netns, "link", "set", "lo", "up")
    await run("ip", "-n", netns, "addr", "replace", f"{address}/{network.prefixlen}", "dev", "eth0")
    await run("ip", "-n", netns, "link", "set", "eth0", "up")
    await run("ip", "-n", netns, "route", "replace", "default", "via", str(gateway))
    # Pod IPs are reused as soon as they are free: the node's neighbour entry for this
    # address may still name the MAC of a deleted pod's veth, and the node (Envoy, probes)
    # would send into the void until it expires (~40 s measured). Forget it now.
    await run("ip", "neigh", "flush", "to", str(address), "dev", bridge, check=False)


async def delete_pod_network(netns: str, veth: str) -> None:
    if netns_exists(netns):
        await run("ip", "netns", "del", netns, check=False)
    await run("ip", "link", "del", veth, check=False)  # gone with its peer, normally
