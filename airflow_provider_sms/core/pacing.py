"""A client-side rate limiter shared by all threads of a hook, so large sends are paced, not throttled.

Calls are spaced at least ``1 / rate`` seconds apart: each caller reserves the next free slot under a
lock and sleeps outside it, so threads queue fairly and any one-second window holds at most ``rate``
calls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Allow at most ``rate`` calls a second across every thread that shares this object."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        # a microsecond of margin keeps float rounding from fitting rate + 1 calls into one second
        self._interval = 1.0 / rate + 1e-6
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def acquire(self) -> None:
        """Block until this caller may make its call."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self._interval
        wait = slot - now
        if wait > 0:
            self._sleep(wait)
