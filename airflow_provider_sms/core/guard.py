"""What stops a send early: a circuit breaker over consecutive 429/503 answers, and a deadline.

One ``SendGuard`` is shared by every thread of a hook's pool. After ``threshold`` consecutive "slow
down" answers (429 or 503) the breaker opens: no further retry is made and no new request is sent, so
the remaining recipients are reported ``rate_limited`` (certainly not processed, so they may fail over
or be retried later) instead of hammering a provider that keeps refusing. The deadline bounds the
whole send, waits for ``Retry-After`` included. ``start()`` re-arms both for each send.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from airflow_provider_sms.core.errors import SmsError, SmsProviderUnavailableError, SmsRateLimitedError

DEFAULT_THRESHOLD = 5
DEFAULT_SEND_TIMEOUT = 600.0  # seconds: well under any task timeout a user is likely to set
SLOW_DOWN_STATUSES = frozenset({429, 503})


class SendGuard:
    """A circuit breaker and a deadline, shared by the threads of one send.

    :param threshold: consecutive 429/503 answers that open the breaker.
    """

    def __init__(self, threshold: int = DEFAULT_THRESHOLD, *, clock: Callable[[], float] = time.monotonic) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        self.threshold = threshold
        self._clock = clock
        self._lock = threading.Lock()
        self._consecutive = 0
        self._deadline: float | None = None

    def start(self, timeout: float | None) -> None:
        """Arm for a new send: breaker closed, deadline ``timeout`` seconds from now (None: no deadline)."""
        with self._lock:
            self._consecutive = 0
            self._deadline = None if timeout is None else self._clock() + timeout

    def record(self, status: int) -> None:
        """Count an answer: a 429/503 brings the breaker closer to opening, anything else closes it."""
        with self._lock:
            self._consecutive = self._consecutive + 1 if status in SLOW_DOWN_STATUSES else 0

    @property
    def is_open(self) -> bool:
        return self._consecutive >= self.threshold

    def remaining(self) -> float | None:
        """Seconds left before the deadline (never negative), or None without a deadline."""
        if self._deadline is None:
            return None
        return max(self._deadline - self._clock(), 0.0)

    @property
    def expired(self) -> bool:
        left = self.remaining()
        return left is not None and left <= 0

    def refusal(self, **where: Any) -> SmsError | None:
        """The error to report instead of sending another request, or None when one may be sent.

        :param where: ``provider`` and ``endpoint`` for the error's text.
        """
        if self.is_open:
            return SmsRateLimitedError(
                f"stopped after {self._consecutive} consecutive 429/503 answers (circuit breaker); "
                "not sent, so it can be retried later or sent through another connection",
                **where,
            )
        if self.expired:
            return SmsProviderUnavailableError(
                "the send's deadline (send_timeout) passed before this request; not sent, so it can be "
                "retried later or sent through another connection",
                **where,
            )
        return None
