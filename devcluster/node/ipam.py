"""Pod IPs from the node's podCIDR, persisted in the state dir so a restarted agent keeps
the addresses of the pods it adopts."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path


class PoolExhausted(Exception):
    pass


class PodIPAllocator:
    """The next free host address of the podCIDR; the first host address is the bridge's
    (the pods' gateway) and is never handed out."""

    def __init__(self, pod_cidr: str, path: Path) -> None:
        self.network = ipaddress.IPv4Network(pod_cidr)
        self.gateway = next(self.network.hosts())
        self._path = path
        self._by_pod: dict[str, str] = {}
        if path.exists():
            self._by_pod = dict(json.loads(path.read_text()))

    def allocate(self, pod_uid: str) -> ipaddress.IPv4Address:
        if pod_uid in self._by_pod:
            return ipaddress.IPv4Address(self._by_pod[pod_uid])
        taken = set(self._by_pod.values())
        for host in self.network.hosts():
            if host != self.gateway and str(host) not in taken:
                self._by_pod[pod_uid] = str(host)
                self._save()
                return host
        raise PoolExhausted(f"no free address left in podCIDR {self.network}")

    def release(self, pod_uid: str) -> None:
        if self._by_pod.pop(pod_uid, None) is not None:
            self._save()

    def allocations(self) -> dict[str, str]:
        return dict(self._by_pod)

    def _save(self) -> None:
        # Write then rename: a killed agent leaves the old or the new table, never half.
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._by_pod, indent=1, sort_keys=True))
        os.replace(tmp, self._path)
