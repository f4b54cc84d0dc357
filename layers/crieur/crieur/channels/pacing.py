"""Paces sends to a provider's rate (SMS parts per second, SES messages per second) across threads.

The account's rate is shared by every deliver invocation of the channel that runs at once (at most the
event source's MaximumConcurrency, CRIEUR_DELIVER_CONCURRENCY): each invocation takes its share, so the
account's limit holds however many run. Inside one invocation, the threads that send take their turn
from one schedule: each unit is given the next free slot of 1/rate seconds (no burst).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from functools import cache


def share_of_rate(variable: str, default: float) -> float:
    """This invocation's share of the account rate set in `variable` (per second)."""
    try:
        rate = float(os.environ.get(variable) or default)
    except ValueError as bad:
        raise RuntimeError(f"{variable} must be a number of sends per second") from bad
    if rate <= 0:
        raise RuntimeError(f"{variable} must be positive")
    concurrency = max(1, int(os.environ.get("CRIEUR_DELIVER_CONCURRENCY") or 1))
    return rate / concurrency


class Pace:
    """At most `rate` units per second, shared by the threads that call `take`."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next = clock()
        self._lock = threading.Lock()

    def take(self, units: int = 1) -> None:
        """Waits for this caller's turn to send `units` units (an SMS of 3 parts takes 3 slots)."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + units * self.interval
        if start > now:
            self._sleep(start - now)


@cache
def shared_pace(rate: float) -> Pace:
    """One schedule per container and rate: a deliver function sends one chunk at a time."""
    return Pace(rate)
