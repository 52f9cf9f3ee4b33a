"""The sandbox's memory: every message sent or received, in one SQLite table (in memory or a file).

One table holds both directions, so a provider's listing (newest first, keyset-paged) is one indexed
query. All access goes through a lock, so the server thread and tests can share a store. ``on_stored``
listeners see each stored batch as it is committed (a phone that answers the moment it is texted), and
``wait_for`` blocks until a matching message is stored, with a deadline.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_provider_sms.sandbox.delivery import DeliveryPlan

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    direction TEXT NOT NULL,          -- 'out' (sent by a client) or 'in' (received from a phone)
    provider TEXT NOT NULL,
    endpoint TEXT,
    message_id TEXT NOT NULL,
    phone TEXT NOT NULL,              -- the other party, E.164
    sender TEXT,
    text TEXT NOT NULL,
    status TEXT NOT NULL,
    scheduled_for TEXT,
    ts TEXT NOT NULL,                 -- ISO-8601 UTC with microseconds: sorts as text
    segments INTEGER,
    encoding TEXT
);
CREATE INDEX IF NOT EXISTS messages_listing ON messages (provider, direction, ts DESC, seq DESC);
CREATE INDEX IF NOT EXISTS messages_phone ON messages (phone, ts);
CREATE INDEX IF NOT EXISTS messages_id ON messages (message_id);
"""

_COLUMNS = (
    "seq",
    "direction",
    "provider",
    "endpoint",
    "message_id",
    "phone",
    "sender",
    "text",
    "status",
    "scheduled_for",
    "ts",
    "segments",
    "encoding",
)


_INSERT = f"INSERT INTO messages ({', '.join(_COLUMNS[1:])}) VALUES ({', '.join('?' * (len(_COLUMNS) - 1))})"  # noqa: S608


def stamp(moment: datetime | None = None) -> str:
    """A sortable UTC timestamp: ``2030-01-01T09:00:00.000000Z``."""
    moment = (moment or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_id(kind: str) -> str:
    """Message ids in each provider's documented shape."""
    if kind == "cellcast":
        return uuid.uuid4().hex[:24]
    if kind == "clickatell":
        return uuid.uuid4().hex
    return str(uuid.uuid4().int % 10**12)


@dataclass
class Settings:
    """Account state a test or demo can change: opt-outs, registered senders, balance, tokens."""

    unsubscribed: set[str] = field(default_factory=set)
    registered_senders: set[str] | None = None  # None: every well-formed sender ID is accepted
    balance: int | None = None  # None: unlimited credit; otherwise SMS parts left
    tokens: set[str] | None = None  # None: any token in the documented form is accepted
    cellcast_rate_limit: int | None = 15  # calls a second, as documented; None turns the limit off
    delivery: DeliveryPlan = field(default_factory=DeliveryPlan)  # how sent messages progress


class Store:
    """Thread-safe message storage; ``path=":memory:"`` keeps everything in memory."""

    def __init__(self, path: str = ":memory:") -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._stored = threading.Condition(self._lock)  # notified after every committed batch
        self._listeners: list[Callable[[list[dict[str, Any]]], None]] = []
        self.settings = Settings()
        self.recent_calls: deque[float] = deque()  # for per-account rate limits
        self.media: OrderedDict[str, tuple[str, bytes]] = OrderedDict()  # message id -> MMS image (the latest 200)

    def keep_media(self, message_ids: Iterable[str], content_type: str, content: bytes) -> None:
        """Remember the image an MMS carried, for the page to show."""
        with self._lock:
            for message_id in message_ids:
                self.media[message_id] = (content_type, content)
            while len(self.media) > 200:
                self.media.popitem(last=False)

    def add_messages(
        self,
        *,
        direction: str,
        provider: str,
        phones: Iterable[str],
        text: str,
        status: str,
        endpoint: str | None = None,
        sender: str | None = None,
        scheduled_for: str | None = None,
        ts: str | None = None,
        message_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Store one text sent to (``out``) or received from (``in``) each phone; return the rows.

        The id (in the provider's shape unless given), the time (now unless given), the SMS parts and
        the encoding are filled in here, so every caller stores messages the same way.
        """
        from airflow_provider_sms.core.encoding import count_segments

        info = count_segments(text)
        stored = []
        with self._lock:
            self._db.execute("BEGIN")
            for phone in phones:
                values = {
                    "direction": direction,
                    "provider": provider,
                    "endpoint": endpoint,
                    "message_id": message_id or new_id(provider),
                    "phone": phone,
                    "sender": sender,
                    "text": text,
                    "status": status,
                    "scheduled_for": scheduled_for,
                    "ts": ts or stamp(),
                    "segments": info.segments,
                    "encoding": info.encoding,
                }
                cursor = self._db.execute(_INSERT, tuple(values[c] for c in _COLUMNS[1:]))
                stored.append({**values, "seq": cursor.lastrowid})
            self._db.execute("COMMIT")
            self._stored.notify_all()
            listeners = list(self._listeners)
        for listener in listeners:  # outside the lock: a listener may store messages itself
            try:
                listener([dict(row) for row in stored])
            except Exception:  # what was stored stays stored: a listener never fails the request
                log.exception("sandbox store listener failed")
        return stored

    def on_stored(self, listener: Callable[[list[dict[str, Any]]], None]) -> None:
        """Call ``listener`` with the rows of every batch stored from now on, in the storing thread,
        right after the commit (until ``reset``)."""
        with self._lock:
            self._listeners.append(listener)

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        """The oldest stored message ``match`` accepts, waiting up to ``timeout`` seconds for one to be
        stored; ``TimeoutError`` when none was."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for row in self.after(seen):
                if match(row):
                    return row
                seen = row["seq"]
            with self._lock:
                newest = int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM messages").fetchone()[0])
                if newest <= seen:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError(f"no matching message was stored within {timeout:g}s")
                    self._stored.wait(remaining)

    def add_message(self, *, phone: str, **fields: Any) -> dict[str, Any]:
        """``add_messages`` for one phone."""
        (row,) = self.add_messages(phones=[phone], **fields)
        return row

    def page(
        self,
        provider: str,
        *,
        directions: tuple[str, ...] = ("in",),
        before: tuple[str, int] | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Newest first: after the keyset ``before=(ts, seq)``, or skipping ``offset`` rows."""
        where = f"provider = ? AND direction IN ({', '.join('?' * len(directions))})"
        params: list[Any] = [provider, *directions]
        if before is not None:
            where += " AND (ts < ? OR (ts = ? AND seq < ?))"
            params += [before[0], before[0], before[1]]
        sql = f"SELECT {', '.join(_COLUMNS)} FROM messages WHERE {where} ORDER BY ts DESC, seq DESC LIMIT ? OFFSET ?"  # noqa: S608
        with self._lock:
            rows = self._db.execute(sql, (*params, limit, offset)).fetchall()
        return [dict(zip(_COLUMNS, r, strict=True)) for r in rows]

    def all(self, *, provider: str | None = None, phone: str | None = None) -> list[dict[str, Any]]:
        """Every message, oldest first, optionally for one provider or phone."""
        where, params = [], []
        if provider:
            where.append("provider = ?")
            params.append(provider)
        if phone:
            where.append("phone = ?")
            params.append(phone)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        # only fixed column names are interpolated; every value is a bound parameter
        sql = f"SELECT {', '.join(_COLUMNS)} FROM messages {clause} ORDER BY ts, seq"  # noqa: S608
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [dict(zip(_COLUMNS, r, strict=True)) for r in rows]

    def find(self, provider: str, message_id: str) -> dict[str, Any] | None:
        """The message ``message_id`` of ``provider``, or None."""
        sql = f"SELECT {', '.join(_COLUMNS)} FROM messages WHERE message_id = ? AND provider = ? LIMIT 1"  # noqa: S608
        with self._lock:
            row = self._db.execute(sql, (message_id, provider)).fetchone()
        return dict(zip(_COLUMNS, row, strict=True)) if row else None

    def after(self, seq: int, limit: int = 1000) -> list[dict[str, Any]]:
        """Messages stored after ``seq``, oldest first (what is new since a reader last looked)."""
        sql = f"SELECT {', '.join(_COLUMNS)} FROM messages WHERE seq > ? ORDER BY seq LIMIT ?"  # noqa: S608
        with self._lock:
            rows = self._db.execute(sql, (seq, limit)).fetchall()
        return [dict(zip(_COLUMNS, r, strict=True)) for r in rows]

    def last_seq(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM messages").fetchone()[0])

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])

    def spend(self, parts: int) -> bool:
        """Take ``parts`` SMS parts from the balance; False (nothing taken) when it is too low."""
        with self._lock:
            if self.settings.balance is None:
                return True
            if self.settings.balance < parts:
                return False
            self.settings.balance -= parts
            return True

    def reset(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM messages")
            self.settings = Settings()
            self.recent_calls.clear()
            self.media.clear()
            self._listeners.clear()
