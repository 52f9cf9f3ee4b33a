"""What the webhook routes check before anything is recorded, with no web framework in sight.

Providers do not sign their calls, so each connection carries its own secret (extra ``webhook_secret``)
that every call must present, in the URL (``?secret=``) or as the HTTP Basic password (Clickatell lets
you set a user and password on its callback). A connection without a secret takes no webhooks. Secrets
are compared in constant time and never logged.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_sms.hooks.base import SmsHook

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # no provider's single call comes near this
HOOK_TTL = 30.0  # seconds a connection (and its secret) is reused before it is read again
_MAX_CACHED = 256


class Refused(Exception):
    """A call that is answered with ``status`` and nothing recorded; ``detail`` is safe to show anyone."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


NOT_FOUND = Refused(404, "Not Found")  # the same answer as a route that does not exist: it reveals nothing


def presented_secret(query_secret: str | None, authorization: str | None) -> str | None:
    """The secret a call carries: ``?secret=`` in its URL, or the password of an HTTP Basic header."""
    if query_secret:
        return query_secret
    if not authorization or authorization[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    _user, colon, password = decoded.partition(":")
    return password if colon and password else None


def secret_matches(expected: str | None, presented: str | None) -> bool:
    """Constant-time comparison; a connection without a secret accepts nothing."""
    if not expected or not presented:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), presented.encode("utf-8"))


def read_json(body: bytes) -> Any:
    """The JSON payload of a call, or ``Refused(400)``."""
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "the body is not JSON") from None


class Hooks:
    """The SMS hook of each connection, read at most once every ``ttl`` seconds (a changed secret or a
    deleted connection takes effect within that time). Unknown connections are remembered as None too,
    so a scan of made-up names costs one lookup each per ``ttl``; at most ``_MAX_CACHED`` are kept."""

    def __init__(self, ttl: float = HOOK_TTL) -> None:
        self.ttl = ttl
        self._cache: OrderedDict[str, tuple[float, SmsHook | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, conn_id: str) -> SmsHook | None:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(conn_id)
            if cached is not None and cached[0] > now:
                return cached[1]
        hook = self._load(conn_id)
        with self._lock:
            self._cache[conn_id] = (now + self.ttl, hook)
            self._cache.move_to_end(conn_id)
            while len(self._cache) > _MAX_CACHED:
                self._cache.popitem(last=False)
        return hook

    @staticmethod
    def _load(conn_id: str) -> SmsHook | None:
        from airflow_provider_sms.hooks import get_sms_hook

        try:
            return get_sms_hook(conn_id)
        except Exception as err:  # not defined, not an SMS type, secrets backend down: all look the same outside
            log.info("SMS webhook for connection %r refused: %s", conn_id, type(err).__name__)
            return None

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


def authorized_hook(hooks: Hooks, conn_id: str, presented: str | None) -> SmsHook:
    """The hook of ``conn_id`` when the call presented its secret; ``NOT_FOUND`` otherwise, whatever the
    reason (unknown connection, no secret set, wrong secret)."""
    hook = hooks.get(conn_id) if len(conn_id) <= 250 else None
    if hook is None or not secret_matches(hook.webhook_secret, presented):
        raise NOT_FOUND
    return hook
