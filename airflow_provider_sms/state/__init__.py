"""The provider's durable state, one module per kind, each the only code that touches its store.

Where a kind is kept depends on who must reach it, always through Airflow's own means: the send ledger
(``ledger``), written by task workers, which on Airflow 3 may not open the metadata database, lives in
Airflow's task state store or Variables; the open approval questions and the replies they consumed
(``questions``), which tasks and triggers both claim, are Variable keys, and so is the opt-out register
(``opt_outs``), which every sender reads and every path that sees a reply writes; state kept by the API server
plugin (``webhook_receipts``) lives in the provider's own small tables in Airflow's metadata database,
in the same transaction as the Airflow rows it goes with. This package gives those tables their common
ground: each is named ``sms_<what>`` and declared on the shared ``metadata`` below (not Airflow's, so
Airflow's migrations leave it alone), created on first use with ``ensure_tables`` (idempotent, safe when
several processes race to create it) in the database the caller's session is bound to. Rows hold ids,
hashed keys, statuses and times, never message text, and each module prunes its rows after a stated
retention. ``is_transient`` tells a fault worth retrying (the database unreachable, a deadlock) from one
that will never succeed, and ``describe_fault`` names it without the statement's parameters.

Submodules are imported by their users, never here, so importing this package stays cheap.
"""

from __future__ import annotations

import threading
from typing import Any

import sqlalchemy as sa

TABLE_PREFIX = "sms_"

metadata = sa.MetaData()
"""Every provider table is declared on this, apart from Airflow's own ``Base.metadata``: Airflow's
migrations never touch them, and ``ensure_tables`` creates them."""

_created: set[tuple[str, str]] = set()
_lock = threading.Lock()


def ensure_tables(session: Any, *tables: sa.Table) -> None:
    """Create ``tables`` (with their indexes) where they do not exist yet, once per process and database.

    Creation runs in a transaction of its own, committed at once. Two processes creating the same
    table at the same moment is expected (API server workers start together): the loser's error is
    ignored once the table is seen to exist.
    """
    engine = session.get_bind()
    url = engine.url.render_as_string(hide_password=True)
    missing = [t for t in tables if (url, t.name) not in _created]
    if not missing:
        return
    with _lock:
        for table in missing:
            try:
                with engine.begin() as connection:
                    table.create(connection, checkfirst=True)
            except sa.exc.DBAPIError:
                if not sa.inspect(engine).has_table(table.name):
                    raise
            _created.add((url, table.name))


def forget_created() -> None:
    """Forget which tables this process created (tests that drop them)."""
    with _lock:
        _created.clear()


def is_transient(err: BaseException) -> bool:
    """True for a database fault that a later attempt may not meet: unreachable, disconnected, a pool
    timeout, a lock or deadlock. False for anything the same input would hit again."""
    if isinstance(err, (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError)):
        return True
    if isinstance(err, sa.exc.TimeoutError):  # the connection pool is exhausted
        return True
    return isinstance(err, sa.exc.DBAPIError) and bool(err.connection_invalidated)


def describe_fault(err: BaseException) -> str:
    """A log-safe description of a database fault: the error's class and, for a connection fault, the
    driver's first line; never the statement or its parameters (which hold numbers and text)."""
    if isinstance(err, sa.exc.DBAPIError) and err.orig is not None:
        name = f"{type(err).__name__} ({type(err.orig).__name__})"
        if is_transient(err):
            first = str(err.orig).strip().splitlines()[:1]
            return f"{name}: {first[0][:200]}" if first else name
        return name
    return type(err).__name__
