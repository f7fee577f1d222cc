"""A point in time work must end by, taken from the invocation's remaining time: every wait on the way (a
WaveSpeed answer, a retry's pause) is cut to fit it, so a function answers or stops before Lambda ends it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Deadline:
    at: float  # on `clock`'s scale (time.monotonic by default)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    @classmethod
    def within(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(clock() + seconds, clock)

    def remaining(self) -> float:
        return max(0.0, self.at - self.clock())

    def sooner(self, seconds: float) -> Deadline:
        """This deadline, or `seconds` from now if that comes first (one job's share of a run, say)."""
        return Deadline(min(self.at, self.clock() + seconds), self.clock)
