from __future__ import annotations

import itertools
import threading
import time

from airflow_provider_sms.core.pacing import RateLimiter


def test_calls_are_spaced_by_the_rate_on_a_fake_clock() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(10, clock=lambda: now[0], sleep=sleep)
    stamps = []
    for _ in range(25):
        limiter.acquire()
        stamps.append(now[0])
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.1 - 1e-9
    # any one-second window holds at most 10 calls
    assert max(sum(1 for s in stamps if t <= s < t + 1) for t in stamps) == 10


def test_limiter_is_shared_across_threads() -> None:
    limiter = RateLimiter(50)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stamps.sort()
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    # spacing is enforced by the reservation, so even with thread wake-up jitter no two calls are bunched
    assert len(stamps) == 20
    assert sum(gaps) >= 19 * 0.02 * 0.9
