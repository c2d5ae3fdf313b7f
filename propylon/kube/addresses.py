"""Making the Gateway addresses a node serves reachable on it: each is added as a /32
(/128) to an interface of the node (loopback by default; the network routes the LB
pool to the nodes). Only addresses this agent added are ever removed: it keeps their
list in its state directory, so a restarted agent cleans up after its predecessor."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("propylon.addresses")


class NodeAddresses:
    def __init__(self, device: str, state_file: Path) -> None:
        self.device = device
        self._state_file = state_file
        self.added: set[str] = set()
        try:
            self.added = set(json.loads(state_file.read_text()))
        except (OSError, ValueError, TypeError):
            self.added = set()

    async def ensure(self, wanted: Iterable[str]) -> None:
        """Exactly `wanted` (among the addresses we manage) on the device."""
        want = {a for a in wanted if _valid(a)}
        present, networks = await self._present()
        # An address inside a prefix the device has (127.0.0.0/8 on lo) is there already.
        covered = {
            a for a in want - present if any(ipaddress.ip_address(a) in net for net in networks)
        }
        want -= covered
        for address in sorted(want - present):
            if await self._ip("add", address):
                log.info("added %s to %s", address, self.device)
        for address in sorted((self.added - want) & present):
            if await self._ip("del", address):
                log.info("removed %s from %s", address, self.device)
        # Ours: what we added now or before; an address that was there already is not.
        self.added = (want - present) | (self.added & want)
        self._save()

    async def remove_all(self) -> None:
        await self.ensure(())

    def _save(self) -> None:
        try:
            self._state_file.parent.mkdir(parents=True, exist_ok=True)
            self._state_file.write_text(json.dumps(sorted(self.added)))
        except OSError as exc:
            log.warning("cannot record the node's addresses: %s", exc)

    async def _present(
        self,
    ) -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
        proc = await asyncio.create_subprocess_exec(
            "ip",
            "-j",
            "addr",
            "show",
            "dev",
            self.device,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            log.warning("ip addr show dev %s: %s", self.device, err.decode().strip())
            return set(), []
        found: set[str] = set()
        networks = []
        for link in json.loads(out or b"[]"):
            for info in link.get("addr_info") or ():
                if info.get("local"):
                    found.add(str(info["local"]))
                    prefix = int(info.get("prefixlen", 32))
                    net = ipaddress.ip_network(f"{info['local']}/{prefix}", strict=False)
                    if net.num_addresses > 1:
                        networks.append(net)
        return found, networks

    async def _ip(self, verb: str, address: str) -> bool:
        prefix = 32 if ipaddress.ip_address(address).version == 4 else 128
        proc = await asyncio.create_subprocess_exec(
            "ip",
            "addr",
            verb,
            f"{address}/{prefix}",
            "dev",
            self.device,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
        if proc.returncode != 0:
            log.warning(
                "ip addr %s %s dev %s: %s", verb, address, self.device, err.decode().strip()
            )
            return False
        return True


def _valid(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True
