"""What the webhook routes check before anything is recorded, with no web framework in sight.

Providers do not sign their calls, so each connection carries its own secret (extra ``webhook_secret``)
that every call must present, in the URL (``?secret=``) or as the HTTP Basic password (Clickatell lets
you set a user and password on its callback). A connection without a secret takes no webhooks, and
says so in the log (at start-up, and once an hour per connection when called). Secrets are compared in
constant time and never logged. A connection id is looked up exactly as Airflow looks it up (its own
secrets backends, in their order), after the same syntax check Airflow applies to ids it stores.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from airflow_provider_sms.connections import CONNECTION_TYPES, environment_connections

if TYPE_CHECKING:
    from airflow_provider_sms.hooks.base import SmsHook

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # no provider's single call comes near this
MAX_DEPTH = 32  # no provider's JSON nests beyond a few levels
HOOK_TTL = 30.0  # seconds a connection (and its secret) is reused before it is read again
_MAX_CACHED = 256
NO_SECRET_WARNING_EVERY = 3600.0
SMS_CONN_TYPES = tuple(CONNECTION_TYPES)
# Airflow's own rule for a connection id (``airflow.models.connection.RE_SANITIZE_CONN_ID``, 250 chars).
CONN_ID = re.compile(r"^[\w#!()\-.:/\\]{1,250}$")


class Refused(Exception):
    """A call that is answered with ``status`` and nothing recorded; ``detail`` is safe to show anyone."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


NOT_FOUND = Refused(404, "Not Found")  # the same answer as a route that does not exist: it reveals nothing


class Unrecordable(Refused):
    """A body that can never be recorded, however often it is sent: 422, with a short reason."""

    def __init__(self, detail: str) -> None:
        super().__init__(422, detail)


class Transient(Exception):
    """A fault that a later call may not meet (the metadata database unreachable): 503 and Retry-After."""


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
    """The JSON payload of a call; ``Refused(400)`` when it is not JSON, ``Unrecordable`` when it nests
    deeper than any provider's format (checked before parsing, so depth costs nothing)."""
    depth = deepest = 0
    for byte in body:
        if byte in (0x5B, 0x7B):  # [ {  (inside strings too: an over-count only makes the check stricter)
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    if deepest > MAX_DEPTH:
        raise Unrecordable(f"the JSON nests deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "the body is not JSON") from None


class Hooks:
    """The SMS hook of each connection, read at most once every ``ttl`` seconds (a changed secret or a
    deleted connection takes effect within that time). A connection Airflow does not know is remembered
    as None too, so a scan of made-up names costs one lookup each per ``ttl``; at most ``_MAX_CACHED``
    are kept. A lookup that failed (Airflow answers "not defined" when a secrets backend or the metadata
    database is down, so that is checked) is never remembered: the call gets ``Transient``."""

    def __init__(self, ttl: float = HOOK_TTL) -> None:
        self.ttl = ttl
        self._cache: OrderedDict[str, tuple[float, SmsHook | None]] = OrderedDict()
        self._lock = threading.Lock()
        self._warned: dict[str, float] = {}

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
        except Exception as err:
            if type(err).__name__ != "AirflowNotFoundException" and not isinstance(err, ValueError):
                log.warning("SMS webhook: looking up connection %r failed (%s)", conn_id, type(err).__name__)
                raise Transient(f"looking up the connection failed: {type(err).__name__}") from None
            if not metadata_database_answers():
                log.warning("SMS webhook: connection %r not found while the metadata database is down", conn_id)
                raise Transient("the metadata database is unreachable") from None
            log.info("SMS webhook for connection %r refused: %s", conn_id, type(err).__name__)
            return None

    def warn_no_secret(self, conn_id: str) -> None:
        """Say (at most once an hour per connection) why this connection's calls are all refused."""
        now = time.monotonic()
        with self._lock:
            last = self._warned.get(conn_id)
            if last is not None and now - last < NO_SECRET_WARNING_EVERY:
                return
            self._warned[conn_id] = now
        log.warning(UNPROTECTED_WARNING, conn_id)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


UNPROTECTED_WARNING = (
    "SMS webhooks: connection %r has no webhook secret, so every webhook call for it is refused (404); "
    "set the extra field 'webhook_secret' on the connection and put it in the webhook URL (?secret=...)"
)


def metadata_database_answers() -> bool:
    """Whether the metadata database answers a trivial query now."""
    try:
        import sqlalchemy as sa
        from airflow.utils.session import create_session

        with create_session() as session:
            session.execute(sa.text("SELECT 1"))
    except Exception:
        return False
    return True


def authorized_hook(hooks: Hooks, conn_id: str, presented: str | None) -> SmsHook:
    """The hook of ``conn_id`` when the call presented its secret; ``NOT_FOUND`` otherwise, whatever the
    reason (an id Airflow would not accept, an unknown connection, no secret set, a wrong secret)."""
    hook = hooks.get(conn_id) if CONN_ID.match(conn_id) else None
    if hook is not None and not hook.webhook_secret:
        hooks.warn_no_secret(conn_id)
    if hook is None or not secret_matches(hook.webhook_secret, presented):
        raise NOT_FOUND
    return hook


def connections_without_secret() -> list[str]:
    """SMS connections (environment variables and the metadata database) that have no webhook secret."""
    from airflow.models.connection import Connection

    found = {conn.conn_id: bool(conn.extra_dejson.get("webhook_secret")) for conn in environment_connections()}
    try:
        import sqlalchemy as sa
        from airflow.utils.session import create_session

        with create_session() as session:
            query = sa.select(Connection).where(Connection.conn_type.in_(SMS_CONN_TYPES))
            for conn in session.scalars(query):
                found.setdefault(conn.conn_id, bool(conn.extra_dejson.get("webhook_secret")))
    except Exception as err:
        log.info("SMS webhooks: could not list connections at start-up (%s)", type(err).__name__)
    return sorted(conn_id for conn_id, has_secret in found.items() if not has_secret)


def warn_connections_without_secret() -> None:
    """The start-up warning: one line per SMS connection that cannot take webhooks."""
    for conn_id in connections_without_secret():
        log.warning(UNPROTECTED_WARNING, conn_id)
