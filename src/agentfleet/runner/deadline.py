"""The run's own time limit, shared by the agent and the criteria commands after it."""

from __future__ import annotations

import time


class Deadline:
    """Monotonic: a clock change on the node must not end a run early or late."""

    def __init__(self, seconds: float | None, started: float | None = None) -> None:
        self.started = time.monotonic() if started is None else started
        self.seconds = seconds

    def remaining(self) -> float | None:
        """Seconds left, never below 0; None when the run has no limit."""
        if self.seconds is None:
            return None
        return max(0.0, self.started + self.seconds - time.monotonic())

    @property
    def passed(self) -> bool:
        remaining = self.remaining()
        return remaining is not None and remaining <= 0

    def elapsed(self) -> float:
        return time.monotonic() - self.started
