"""The kubelet's crash-loop back-off: 10 s, doubling, capped at 5 minutes, forgotten once a
container has run for twice the cap."""

from __future__ import annotations

from dataclasses import dataclass

INITIAL_SECONDS = 10.0
MAX_SECONDS = 300.0
RESET_AFTER_SECONDS = 2 * MAX_SECONDS


@dataclass
class CrashBackoff:
    next_delay: float = INITIAL_SECONDS

    def delay_after_exit(self, ran_for_seconds: float) -> float:
        """How long to wait before restarting a container that ran this long."""
        if ran_for_seconds >= RESET_AFTER_SECONDS:
            self.next_delay = INITIAL_SECONDS
        delay = self.next_delay
        self.next_delay = min(self.next_delay * 2, MAX_SECONDS)
        return delay


def should_restart(restart_policy: str, exit_code: int) -> bool:
    if restart_policy == "Never":
        return False
    if restart_policy == "OnFailure":
        return exit_code != 0
    return True
