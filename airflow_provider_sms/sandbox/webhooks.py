"""The sandbox calling webhooks as the providers do: replies and delivery reports, with retries.

Set a provider's URLs through the control API (``POST /_sandbox/webhooks``: ``{"provider",
"inbound", "status", "method"}``; ``method`` is ``GET`` for Clickatell's query-parameter status form).
From then on a background thread pushes, in that provider's documented format, every reply the sandbox
receives and every delivery status change of messages sent after that moment. A call that fails (no
answer, or not 2xx) is tried again after 1, 2, 4, 8 and 16 seconds, then dropped; ``GET
/_sandbox/webhooks`` shows the URLs (secrets hidden) and the latest attempts; ``wait_until_idle``
returns once everything stored so far has been pushed (or dropped) and nothing is still to come.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_sms.sandbox.providers import cellcast, clickatell, cloudware
from airflow_provider_sms.sandbox.store import Store

log = logging.getLogger(__name__)

RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0)
_FORMATS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "cellcast": (cellcast.inbound_webhook, cellcast.status_webhook),
    "clickatell": (clickatell.inbound_webhook, clickatell.status_webhook),
    "cloudware": (cloudware.inbound_webhook, cloudware.status_webhook),
}
_SECRET = re.compile(r"(secret=|//[^/@:]*:)[^&@/]+")


def hide_secrets(url: str) -> str:
    """``url`` with a ``secret=`` value and a user's password replaced by ``***``."""
    return _SECRET.sub(r"\1***", url)


@dataclass
class Targets:
    inbound: str | None = None
    status: str | None = None
    method: str = "POST"


@dataclass(order=True)
class _Call:
    due: float
    attempt: int = field(compare=False)
    provider: str = field(compare=False)
    kind: str = field(compare=False)
    payload: dict[str, Any] = field(compare=False)


class WebhookPusher:
    """Watches the store and calls the configured URLs; starts its thread on the first configuration."""

    def __init__(self, store: Store, tick: float = 0.2) -> None:
        self.store = store
        self.tick = tick
        self.targets: dict[str, Targets] = {}
        self.attempts: deque[dict[str, Any]] = deque(maxlen=200)
        self._lock = threading.Lock()
        self._seen_seq = 0
        self._following: dict[int, tuple[dict[str, Any], str | None]] = {}  # seq -> (row, last pushed status)
        self._calls: list[_Call] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._session: Any = None
        self._stepped = threading.Condition(self._lock)  # notified after every round
        self._rounds = 0
        self._idle = False  # the latest round made no call and left nothing to follow or retry

    def configure(self, provider: str, inbound: str | None, status: str | None, method: str = "POST") -> None:
        if provider not in _FORMATS:
            raise ValueError(f"provider must be one of {', '.join(_FORMATS)}")
        method = method.upper()
        if method not in ("POST", "GET") or (method == "GET" and provider != "clickatell"):
            raise ValueError("method is POST, or GET for Clickatell's status callback")
        for url in (inbound, status):
            if url is not None and not url.startswith(("http://", "https://")):
                raise ValueError(f"{hide_secrets(url)!r} is not an http(s) URL")
        with self._lock:
            if not self.targets:
                self._seen_seq = self.store.last_seq()  # push what happens from now on, not a backlog
            self.targets[provider] = Targets(inbound, status, method)
        self._start()

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "webhooks": {
                    p: {
                        "inbound": hide_secrets(t.inbound) if t.inbound else None,
                        "status": hide_secrets(t.status) if t.status else None,
                        "method": t.method,
                    }
                    for p, t in self.targets.items()
                },
                "attempts": list(self.attempts),
                "waiting": len(self._calls),
            }

    def reset(self) -> None:
        with self._lock:
            self.targets.clear()
            self._following.clear()
            self._calls.clear()
            self.attempts.clear()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="sms-sandbox-webhooks")
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                self.step()
            except Exception:  # the sandbox keeps serving whatever one push does
                log.exception("sandbox webhook step failed")

    def step(self, now: float | None = None) -> None:
        """Find what changed and make the calls that are due (one round of the thread's loop)."""
        with self._lock:
            self._collect()
            now = time.monotonic() if now is None else now
            due = [c for c in self._calls if c.due <= now]
            self._calls = [c for c in self._calls if c.due > now]
        for call in due:
            self._call(call)
        with self._lock:
            self._idle = not due and not self._calls and not self._following
            self._rounds += 1
            self._stepped.notify_all()

    def wait_until_idle(self, timeout: float) -> None:
        """Return once a whole round that began after this call found nothing to push, follow or retry
        (so nothing stored before the call will still be pushed); ``TimeoutError`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._thread is None:
                return
            first = self._rounds + 2  # the round under way may have started before this call
            while self._rounds < first or not self._idle:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"the sandbox's webhooks were still busy after {timeout:g}s")
                self._stepped.wait(remaining)

    def _collect(self) -> None:
        while rows := self.store.after(self._seen_seq):
            self._seen_seq = rows[-1]["seq"]
            for row in rows:
                targets = self.targets.get(row["provider"])
                if targets is None:
                    continue
                if row["direction"] == "in" and targets.inbound:
                    self._queue(row["provider"], "inbound", _FORMATS[row["provider"]][0](row))
                elif row["direction"] == "out" and targets.status:
                    self._following[row["seq"]] = (row, None)
        plan = self.store.settings.delivery
        for seq, (row, pushed) in list(self._following.items()):
            status = plan.status(row)
            if status != pushed:
                for step in _passed_through(pushed, status):  # a busy round never skips a status
                    payload = _FORMATS[row["provider"]][1](row, step)
                    if payload is not None:
                        self._queue(row["provider"], "status", payload)
                self._following[seq] = (row, status)
            if status not in ("scheduled", "queued", "sent"):
                del self._following[seq]

    def _queue(self, provider: str, kind: str, payload: dict[str, Any], attempt: int = 0, delay: float = 0) -> None:
        self._calls.append(_Call(time.monotonic() + delay, attempt, provider, kind, payload))

    def _call(self, call: _Call) -> None:
        with self._lock:
            targets = self.targets.get(call.provider)
        url = getattr(targets, call.kind, None) if targets else None
        if not url:
            return
        method = targets.method if call.kind == "status" else "POST"  # type: ignore[union-attr]
        if self._session is None:
            import requests

            self._session = requests.Session()
        try:
            if method == "GET":
                answer = self._session.get(url, params=call.payload, timeout=5)
            else:
                answer = self._session.post(url, json=call.payload, timeout=5)
            outcome: int | str = answer.status_code
            ok = 200 <= answer.status_code < 300
        except Exception as err:  # no answer: retried like a non-2xx
            outcome, ok = type(err).__name__, False
        with self._lock:
            self.attempts.append(
                {
                    "provider": call.provider,
                    "kind": call.kind,
                    "url": hide_secrets(url),
                    "attempt": call.attempt + 1,
                    "outcome": outcome,
                }
            )
            if not ok and call.attempt < len(RETRY_DELAYS):
                self._queue(call.provider, call.kind, call.payload, call.attempt + 1, RETRY_DELAYS[call.attempt])


_PROGRESSION = ("scheduled", "queued", "sent")


def _passed_through(pushed: str | None, status: str) -> list[str]:
    """The statuses a message went through since ``pushed`` up to ``status``, in order: a provider reports
    each change, so a round that first sees a message already final still reports queued and sent."""
    if pushed is None:
        start = 0 if status == "scheduled" else 1  # a message sent at once was never scheduled
    else:
        start = _PROGRESSION.index(pushed) + 1 if pushed in _PROGRESSION else len(_PROGRESSION)
    end = _PROGRESSION.index(status) if status in _PROGRESSION else len(_PROGRESSION)
    return [*_PROGRESSION[start:end], status]
