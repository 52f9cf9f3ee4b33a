"""Reading every task instance's send ledger, for the API server's SMS page (never written here).

``state.ledger`` writes one task instance's ledger from inside its task; this module lists them all,
newest first, where that Airflow keeps them: rows of Airflow's ``task_state_store`` table whose key is
``sms_send_ledger/<n>`` (Airflow 3.3+ with the metadata-database state backend), or the
``sms_send_ledger/<hash>/<n>`` Variables (Airflow 3.0-3.2), whose value names the task instance.

Reads are cheap first, detailed later: ``ledger_index`` lists the ledgers (task instance and latest
write, one grouped query, no values) so a page picks the ones it shows; ``load`` reads only their
chunks; each ``StoredLedger.view()`` is ``SendLedger``'s own reading of them, so the page shows exactly
what a retry would see. ``chunks_since`` yields the chunks that recorded accepted messages, for
totals. All are bounded by a time window and, when given, the DAGs the reader may see.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_provider_sms.state.ledger import KEY, VARIABLE_PREFIX, LedgerView, SendLedger

TASK_STATE_PREFIX = f"{KEY}/"
Scope = tuple[str, str, str, int]  # dag_id, run_id, task_id, map_index


@dataclass
class StoredLedger:
    """One task instance's ledger: where it is, when it was last written, and (once loaded) its chunks."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    updated_at: datetime
    chunks: list[dict[str, Any]] | None = None  # None until ``load``

    @property
    def scope(self) -> Scope:
        return (self.dag_id, self.run_id, self.task_id, self.map_index)

    def view(self) -> LedgerView:
        return SendLedger(_Chunks(self.chunks or [])).view()


class _Chunks:
    """A read-only ``ChunkStore`` over chunks already read."""

    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        self.chunks = chunks

    def get(self, index: int) -> dict[str, Any] | None:
        return self.chunks[index] if 0 <= index < len(self.chunks) else None

    def put(self, index: int, chunk: dict[str, Any]) -> None:  # pragma: no cover - never written here
        raise TypeError("a stored ledger is read-only")


def state_store_in_database() -> bool:
    """Whether this Airflow keeps task state in its metadata database (3.3+ with the default backend)."""
    try:
        from airflow.state import get_state_backend
        from airflow.state.metastore import MetastoreBackend
    except ImportError:
        return False
    try:
        return isinstance(get_state_backend(), MetastoreBackend)
    except Exception:  # a misconfigured backend: no ledgers to read there
        return False


def ledger_index(
    session: Any, *, since: datetime | None = None, dag_ids: Collection[str] | None = None
) -> list[StoredLedger]:
    """Every ledger written at or after ``since`` (of ``dag_ids`` only, when given), newest first; task
    state store ledgers come without their chunks (``load`` reads them), Variable ones with them."""
    if dag_ids is not None and not dag_ids:
        return []
    found = _index_task_state_store(session, since, dag_ids) if state_store_in_database() else []
    found += _from_variables(session, since, dag_ids)
    found.sort(key=lambda ledger: (ledger.updated_at, ledger.scope), reverse=True)
    return found


def load(session: Any, ledgers: Sequence[StoredLedger]) -> list[StoredLedger]:
    """Read the chunks of ``ledgers`` that have none yet (one query per 200); return them all, in order."""
    missing = [ledger for ledger in ledgers if ledger.chunks is None]
    for start in range(0, len(missing), 200):
        batch = {ledger.scope: ledger for ledger in missing[start : start + 200]}
        parts: dict[Scope, dict[int, dict[str, Any]]] = {scope: {} for scope in batch}
        for scope, index, chunk in _rows(session, batch):
            parts[scope][index] = chunk
        for scope, by_index in parts.items():
            batch[scope].chunks = _in_order(by_index)
    return list(ledgers)


def chunks_since(
    session: Any, *, since: datetime | None = None, dag_ids: Collection[str] | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(dag_id, chunk)`` for every chunk written since ``since`` that counts accepted messages (its
    ``sms`` part), without grouping by task instance: what totals per day and DAG need."""
    if dag_ids is not None and not dag_ids:
        return
    if state_store_in_database():
        import sqlalchemy as sa
        from airflow.models.task_state_store import TaskStateStoreModel as Row

        # Only chunks that count accepted messages (the key is in the JSON text; the database filters).
        query = sa.select(Row.dag_id, Row.value).where(_ledger_key(Row), Row.value.like('%"accepted"%'))
        if since is not None:
            query = query.where(Row.updated_at >= since)
        if dag_ids is not None:
            query = query.where(Row.dag_id.in_(list(dag_ids)))
        for dag_id, value in session.execute(query.execution_options(yield_per=2000)):
            if '"accepted"' not in value:  # no count of accepted messages in it: skip the decoding
                continue
            chunk = _decoded(value)
            if chunk is not None:
                yield dag_id, chunk
    for ledger in _from_variables(session, since, dag_ids):
        for chunk in ledger.chunks or []:
            yield ledger.dag_id, chunk


def _ledger_key(row: Any) -> Any:
    return row.key.like(TASK_STATE_PREFIX.replace("_", "\\_") + "%", escape="\\")


def _decoded(value: Any) -> dict[str, Any] | None:
    try:
        chunk = json.loads(value)
    except (TypeError, ValueError):
        return None
    return chunk if isinstance(chunk, dict) else None


def _index_of(key: str, prefix: str) -> int | None:
    tail = key[len(prefix) :]
    return int(tail) if tail.isdigit() else None


def _in_order(by_index: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """Chunks 0, 1, ... until one is missing (the rule ``SendLedger`` reads by)."""
    chunks: list[dict[str, Any]] = []
    while len(chunks) in by_index:
        chunks.append(by_index[len(chunks)])
    return chunks


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _index_task_state_store(session: Any, since: datetime | None, dag_ids: Collection[str] | None) -> list:
    import sqlalchemy as sa
    from airflow.models.task_state_store import TaskStateStoreModel as Row

    latest = sa.func.max(Row.updated_at)
    query = (
        sa.select(Row.dag_id, Row.run_id, Row.task_id, Row.map_index, latest)
        .where(_ledger_key(Row))
        .group_by(Row.dag_id, Row.run_id, Row.task_id, Row.map_index)
    )
    if since is not None:
        query = query.having(latest >= since)
    if dag_ids is not None:
        query = query.where(Row.dag_id.in_(list(dag_ids)))
    return [
        StoredLedger(dag_id, run_id, task_id, int(map_index), _aware(at))
        for dag_id, run_id, task_id, map_index, at in session.execute(query)
    ]


def _rows(session: Any, batch: dict[Scope, StoredLedger]) -> Iterator[tuple[Scope, int, dict[str, Any]]]:
    """The chunks of the task state store ledgers in ``batch`` (index-backed: dag, run and task ids)."""
    import sqlalchemy as sa
    from airflow.models.task_state_store import TaskStateStoreModel as Row

    query = sa.select(Row.dag_id, Row.run_id, Row.task_id, Row.map_index, Row.key, Row.value).where(
        Row.dag_id.in_({s[0] for s in batch}),
        Row.run_id.in_({s[1] for s in batch}),
        Row.task_id.in_({s[2] for s in batch}),
        _ledger_key(Row),
    )
    for dag_id, run_id, task_id, map_index, key, value in session.execute(query):
        scope = (dag_id, run_id, task_id, int(map_index))
        index = _index_of(key, TASK_STATE_PREFIX)
        chunk = _decoded(value) if scope in batch and index is not None else None
        if chunk is not None:
            yield scope, index, chunk  # type: ignore[misc]


def _from_variables(session: Any, since: datetime | None, dag_ids: Collection[str] | None) -> list:
    """Ledgers kept as Variables (Airflow 3.0-3.2), with their chunks (their values name the task)."""
    from airflow_provider_sms.state.variables import VariableKeys

    store = VariableKeys(session=session)
    keys = [key for key in store.keys(VARIABLE_PREFIX) if key.count("/") == 2]
    parts: dict[Scope, dict[int, dict[str, Any]]] = {}
    latest: dict[Scope, datetime] = {}
    for key, raw in store.get_many(keys).items():
        index = _index_of(key, key.rsplit("/", 1)[0] + "/")
        chunk = _decoded(raw)
        try:
            dag_id, run_id, task_id, map_index = chunk["scope"]  # type: ignore[index]
            written = _aware(datetime.fromisoformat(chunk["written_at"]))  # type: ignore[index]
        except (TypeError, ValueError, KeyError):
            continue
        if index is None or (dag_ids is not None and dag_id not in dag_ids):
            continue
        scope = (str(dag_id), str(run_id), str(task_id), int(map_index))
        parts.setdefault(scope, {})[index] = chunk  # type: ignore[assignment]
        latest[scope] = max(latest.get(scope, written), written)
    found = []
    for scope, by_index in parts.items():
        chunks = _in_order(by_index)
        if chunks and (since is None or latest[scope] >= since):
            found.append(StoredLedger(*scope, updated_at=latest[scope], chunks=chunks))
    return found
