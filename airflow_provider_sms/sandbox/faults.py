"""Fault injection and request statistics, as ASGI middleware in front of the provider endpoints.

A rule targets one endpoint (``POST /v1/sms/send``) and applies to its next ``count`` requests (or
all, with ``count`` None): ``latency_ms`` delays the answer; ``status`` answers that error instead
(before processing, or after it with ``processed``, as a provider failing late would); ``drop`` lets
the request be processed, starts the answer and then cuts the connection: the case where a client
must not resend. The middleware also counts requests, answers by status, and the peak number in
flight per endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any


class QuietDrops(logging.Filter):
    """Hide the server's complaint about the answers a ``drop`` fault cuts on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


logging.getLogger("uvicorn.error").addFilter(QuietDrops())


@dataclass
class Fault:
    method: str
    path: str
    count: int | None = 1
    latency_ms: float = 0
    status: int | None = None
    retry_after: str | None = None
    processed: bool = False
    drop: bool = False

    @property
    def endpoint(self) -> str:
        return f"{self.method.upper()} {self.path}"


class ConnectionDropped(Exception):
    """Raised after the answer has started, so the server cuts the connection mid-response."""


class Faults:
    """The active rules and the request statistics, shared by the middleware and the control API."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = []
        self.requests: Counter[str] = Counter()
        self.answers: Counter[tuple[str, int]] = Counter()  # (endpoint, status) -> count
        self.in_flight: Counter[str] = Counter()
        self.peak_in_flight: Counter[str] = Counter()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._rules.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def reset_stats(self) -> None:
        with self._lock:
            self.requests.clear()
            self.answers.clear()
            self.peak_in_flight.clear()

    def take(self, endpoint: str) -> tuple[float, Fault | None]:
        """The latency to add and the failing rule (if any) for one request, using up counted rules."""
        latency = 0.0
        failing: Fault | None = None
        with self._lock:
            for rule in list(self._rules):
                if rule.endpoint != endpoint:
                    continue
                is_failure = rule.status is not None or rule.drop
                if is_failure and failing is not None:
                    continue
                latency += rule.latency_ms / 1000
                if is_failure:
                    failing = rule
                if rule.count is not None:
                    rule.count -= 1
                    if rule.count <= 0:
                        self._rules.remove(rule)
        return latency, failing

    def stats(self) -> dict[str, Any]:
        with self._lock:
            statuses: dict[str, dict[str, int]] = {}
            for (endpoint, status), count in sorted(self.answers.items()):
                statuses.setdefault(endpoint, {})[str(status)] = count
            return {
                "requests": dict(self.requests),
                "total_requests": sum(self.requests.values()),
                "statuses": statuses,
                "peak_in_flight": dict(self.peak_in_flight),
            }


class FaultMiddleware:
    """Apply ``Faults`` to provider endpoints; the control API and the page are never faulted."""

    def __init__(self, app: Any, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path == "/" or path.startswith("/_sandbox"):
            await self.app(scope, receive, send)
            return
        endpoint = f"{scope['method']} {path}"
        faults = self.faults
        with faults._lock:
            faults.requests[endpoint] += 1
            faults.in_flight[endpoint] += 1
            faults.peak_in_flight[endpoint] = max(faults.peak_in_flight[endpoint], faults.in_flight[endpoint])

        async def counted(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                with faults._lock:
                    faults.answers[(endpoint, int(message["status"]))] += 1
            await send(message)

        try:
            latency, rule = faults.take(endpoint)
            if latency:
                await asyncio.sleep(latency)
            if rule is None:
                await self.app(scope, receive, counted)
            elif rule.drop:
                with contextlib.suppress(ConnectionDropped):
                    await self.app(scope, receive, _cut_after_start(counted))
            else:
                if rule.processed:
                    await self.app(scope, receive, _discard)
                await _error(counted, rule)
        finally:
            with faults._lock:
                faults.in_flight[endpoint] -= 1


async def _discard(message: Any) -> None:
    return None


def _cut_after_start(send: Any) -> Any:
    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            await send(message)
            return
        raise ConnectionDropped("sandbox fault: connection dropped after the request was processed")

    return wrapped


async def _error(send: Any, rule: Fault) -> None:
    status = rule.status or 500
    body = json.dumps({"message": f"sandbox fault: HTTP {status}", "error": "OVER_LIMIT" if status == 429 else None})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if rule.retry_after is not None:
        headers.append((b"retry-after", rule.retry_after.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body.encode()})
