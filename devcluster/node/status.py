"""Pod status as the kubelet reports it, from what the agent knows of each container."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


@dataclass
class ContainerStatus:
    name: str
    image: str
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Obj = field(default_factory=dict)
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    container_id: str = ""
    final: bool = False  # terminated and will not be restarted

    def to_api(self) -> Obj:
        status: Obj = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "state": self.state,
            "lastState": self.last_state,
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status


def phase(init_containers: list[ContainerStatus], containers: list[ContainerStatus]) -> str:
    for init in init_containers:
        if init.final and init.state["terminated"].get("exitCode", 0) != 0:
            return "Failed"  # failed for good: the pod never starts
        if not init.final:
            return "Pending"
    if containers and all(c.final for c in containers):
        failed = any(c.state["terminated"].get("exitCode", 0) != 0 for c in containers)
        return "Failed" if failed else "Succeeded"
    if any("running" in c.state or c.restart_count or c.last_state for c in containers):
        return "Running"
    if any(c.final for c in containers):
        return "Running"
    return "Pending"


class Conditions:
    """The pod's conditions, with lastTransitionTime kept across updates."""

    def __init__(self) -> None:
        self._since: dict[str, tuple[str, str]] = {}

    def set(self, kind: str, true: bool, now: str) -> None:
        value = "True" if true else "False"
        previous = self._since.get(kind)
        if previous is None or previous[0] != value:
            self._since[kind] = (value, now)

    def to_api(self) -> list[Obj]:
        return [
            {"type": kind, "status": value, "lastProbeTime": None, "lastTransitionTime": since}
            for kind, (value, since) in self._since.items()
        ]


def pod_conditions(
    conditions: Conditions,
    network_ready: bool,
    initialized: bool,
    containers: list[ContainerStatus],
    now: str,
) -> list[Obj]:
    ready = bool(containers) and all(c.ready for c in containers)
    conditions.set("PodReadyToStartContainers", network_ready, now)
    conditions.set("Initialized", initialized, now)
    conditions.set("ContainersReady", ready, now)
    conditions.set("Ready", ready, now)
    conditions.set("PodScheduled", True, now)
    return conditions.to_api()
