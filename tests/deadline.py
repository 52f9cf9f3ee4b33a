"""Waiting in tests: poll a condition until it holds, and fail loudly, naming what never came, at a deadline."""

from __future__ import annotations

import time
from typing import Any


def wait_for(condition: Any, what: str, timeout: float = 120, interval: float = 0.2) -> Any:
    """Return the first truthy value of ``condition()``; raise ``TimeoutError`` naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"waited {timeout}s for {what}")
