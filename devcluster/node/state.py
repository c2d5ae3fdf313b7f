"""What the agent remembers of each pod in its state dir, so that after a SIGKILL the next
agent adopts the processes still running instead of starting duplicates."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class ContainerRecord:
    pid: int
    started: int  # /proc start time: tells the same process from a reused pid
    started_at: str
    restart_count: int


@dataclass
class PodRecord:
    uid: str
    namespace: str
    name: str
    netns: str | None
    veth: str | None
    containers: dict[str, ContainerRecord] = field(default_factory=dict)

    @staticmethod
    def path(pod_dir: Path) -> Path:
        return pod_dir / "record.json"

    def save(self, pod_dir: Path) -> None:
        pod_dir.mkdir(parents=True, exist_ok=True)
        target = self.path(pod_dir)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, target)

    @classmethod
    def load(cls, pod_dir: Path) -> PodRecord | None:
        try:
            raw = json.loads(cls.path(pod_dir).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        containers = {k: ContainerRecord(**v) for k, v in raw.pop("containers", {}).items()}
        return cls(**raw, containers=containers)


def load_all(pods_dir: Path) -> dict[str, PodRecord]:
    if not pods_dir.is_dir():
        return {}
    records = {}
    for pod_dir in pods_dir.iterdir():
        record = PodRecord.load(pod_dir)
        if record is not None:
            records[record.uid] = record
    return records
