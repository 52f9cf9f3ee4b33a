"""Webhook receipts: the table that makes each reply and delivery report one asset event, across processes.

``sms_webhook_receipt`` holds one row per distinct item a provider pushed: its kind (``inbound`` or
``status``), a key (a SHA-256 of the connection id and the item's identity: the provider's message id,
with the delivery status for a report), a subject (a SHA-256 of the connection id and message id, to
find a message's reports), the connection id, the status, a flag, the asset event it became and when
it arrived. No number, no text. The primary key ``(kind, key)`` is the arbiter: ``claim`` inserts a
row with ``ON CONFLICT DO NOTHING`` (a savepoint and the unique violation on other databases) in the
caller's transaction, the one that also writes the asset event; a second worker claiming the same
item waits on the first one's row and finds it taken, whatever process either runs in. A claim rolled
back (the database failed mid-call) leaves no row, so the provider's retry records the item. Rows are
kept ``RETENTION`` (providers retry for hours, a day at most) and ``prune`` deletes older ones through
the ``received_at`` index.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from airflow_provider_sms.state import TABLE_PREFIX, ensure_tables, metadata

RETENTION = timedelta(days=7)

RECEIPTS = sa.Table(
    f"{TABLE_PREFIX}webhook_receipt",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("subject", sa.String(64), nullable=False),
    sa.Column("conn_id", sa.String(250), nullable=False),
    sa.Column("status", sa.String(16), nullable=True),
    sa.Column("flags", sa.String(64), nullable=True),
    sa.Column("asset_event_id", sa.Integer, nullable=True),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index(f"{TABLE_PREFIX}webhook_receipt_subject_idx", "kind", "subject"),
    sa.Index(f"{TABLE_PREFIX}webhook_receipt_received_at_idx", "received_at"),
)


def digest(conn_id: str, *parts: str) -> str:
    """A fixed-size key of the connection and an item's identity (any length, any characters)."""
    joined = "\x1f".join((conn_id, *parts))
    return hashlib.sha256(joined.encode("utf-8", "surrogatepass")).hexdigest()


def ensure(session: Any) -> None:
    ensure_tables(session, RECEIPTS)


def claim(
    session: Any,
    *,
    kind: str,
    key: str,
    subject: str,
    conn_id: str,
    status: str | None = None,
    flags: str | None = None,
) -> bool:
    """Insert the receipt of one item in the session's transaction; False when it is already there
    (committed by anyone, or claimed earlier in this transaction)."""
    row = {
        "kind": kind,
        "key": key,
        "subject": subject,
        "conn_id": conn_id[:250],
        "status": status,
        "flags": flags,
        "received_at": datetime.now(timezone.utc),
    }
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        from sqlalchemy.dialects import postgresql, sqlite

        insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        result = session.execute(insert(RECEIPTS).values(**row).on_conflict_do_nothing())
        return bool(result.rowcount == 1)
    try:  # MySQL and others: the unique violation, inside a savepoint so the transaction goes on
        with session.begin_nested():
            session.execute(sa.insert(RECEIPTS).values(**row))
    except sa.exc.IntegrityError:
        return False
    return True


def attach_event(session: Any, *, kind: str, key: str, asset_event_id: int) -> None:
    """Note which asset event a claimed item became."""
    session.execute(
        sa.update(RECEIPTS).where(RECEIPTS.c.kind == kind, RECEIPTS.c.key == key).values(asset_event_id=asset_event_id)
    )


def any_recorded_with_status(session: Any, *, kind: str, subject: str, statuses: Iterable[str]) -> bool:
    """Whether an event was recorded for this subject with one of ``statuses`` (an indexed lookup)."""
    query = (
        sa.select(RECEIPTS.c.key)
        .where(
            RECEIPTS.c.kind == kind,
            RECEIPTS.c.subject == subject,
            RECEIPTS.c.status.in_(list(statuses)),
            RECEIPTS.c.asset_event_id.is_not(None),
        )
        .limit(1)
    )
    return session.execute(query).first() is not None


def statuses_of(session: Any, *, kind: str, subjects: list[str]) -> list[tuple[str, str, datetime]]:
    """``(subject, status, received_at)`` of the recorded items of these subjects (indexed lookups, 500
    subjects a query); for the SMS page's delivery column. Nothing before the table exists."""
    if not subjects or not sa.inspect(session.get_bind()).has_table(RECEIPTS.name):
        return []
    found: list[tuple[str, str, datetime]] = []
    for start in range(0, len(subjects), 500):
        query = sa.select(RECEIPTS.c.subject, RECEIPTS.c.status, RECEIPTS.c.received_at).where(
            RECEIPTS.c.kind == kind,
            RECEIPTS.c.subject.in_(subjects[start : start + 500]),
            RECEIPTS.c.status.is_not(None),
            RECEIPTS.c.asset_event_id.is_not(None),
        )
        for subject, status, at in session.execute(query):
            found.append((str(subject), str(status), at if at.tzinfo else at.replace(tzinfo=timezone.utc)))
    return found


def prune(session: Any, *, older_than: timedelta = RETENTION) -> int:
    """Delete receipts older than ``older_than``; return how many went."""
    cutoff = datetime.now(timezone.utc) - older_than
    result = session.execute(sa.delete(RECEIPTS).where(RECEIPTS.c.received_at < cutoff))
    return int(result.rowcount or 0)
