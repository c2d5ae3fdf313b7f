"""What the Kubernetes shell reports to metrics. The method names are those of
`propylon.metrics.Metrics` (Prometheus), which satisfies this protocol; `NoMetrics` is
the default, so the shell runs (and is tested) without a metrics registry."""

from __future__ import annotations

from typing import Protocol


class KubeMetrics(Protocol):
    def status_written(self, kind: str) -> None: ...
    def status_conflicted(self, kind: str) -> None: ...
    def watch_restarted(self, kind: str) -> None: ...
    def watch_relisted(self, kind: str) -> None: ...
    def set_leader(self, leading: bool) -> None: ...


class NoMetrics:
    def status_written(self, kind: str) -> None:
        pass

    def status_conflicted(self, kind: str) -> None:
        pass

    def watch_restarted(self, kind: str) -> None:
        pass

    def watch_relisted(self, kind: str) -> None:
        pass

    def set_leader(self, leading: bool) -> None:
        pass


NO_METRICS = NoMetrics()
