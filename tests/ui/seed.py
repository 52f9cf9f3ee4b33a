"""Seeding the metadata database as real runs would leave it, for the SMS page's tests and benchmark.

Ledgers are written by the provider's own ``SendLedger``/``Journal`` (the code a send runs) into
Airflow's task state store through Airflow's own ``MetastoreBackend``, so the page reads exactly the
rows a task writes through the execution API.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_provider_sms.state.ledger import SendLedger

BUNDLE = "dags-folder"


class MetastoreChunks:
    """A ``ChunkStore`` writing the task state store's rows as the execution API does (JSON values)."""

    def __init__(self, session: Any, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> None:
        from airflow._shared.state import TaskScope

        self.session = session
        self.scope = TaskScope(dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index)

    def get(self, index: int) -> dict[str, Any] | None:
        from airflow.state.metastore import MetastoreBackend

        raw = MetastoreBackend().get(self.scope, f"sms_send_ledger/{index}", session=self.session)
        return json.loads(raw) if raw is not None else None

    def put(self, index: int, chunk: dict[str, Any]) -> None:
        from airflow.state.metastore import MetastoreBackend

        MetastoreBackend().set(self.scope, f"sms_send_ledger/{index}", json.dumps(chunk), session=self.session)


@dataclass
class Part:
    """What one request of a send answered, as ``core.pipeline`` hands it to the journal."""

    accepted: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    unsubscribed: list[str] = field(default_factory=list)
    requests: int = 1
    segments: int = 0  # SMS parts of the whole request (every accepted recipient's)
    encoding: str = "GSM-7"


def ensure_dag(session: Any, dag_id: str) -> None:
    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel

    if session.get(DagBundleModel, BUNDLE) is None:
        session.add(DagBundleModel(name=BUNDLE))
        session.flush()
    if session.get(DagModel, dag_id) is None:
        session.add(DagModel(dag_id=dag_id, bundle_name=BUNDLE, fileloc=f"/dags/{dag_id}.py"))
        session.flush()


def ensure_run(session: Any, dag_id: str, run_id: str, at: datetime | None = None) -> None:
    import sqlalchemy as sa
    from airflow.models.dagrun import DagRun
    from airflow.utils.types import DagRunType

    ensure_dag(session, dag_id)
    found = session.scalar(sa.select(DagRun.id).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    if found is None:
        when = at or datetime.now(timezone.utc)
        session.add(
            DagRun(dag_id=dag_id, run_id=run_id, run_type=DagRunType.MANUAL, logical_date=when, state="success")
        )
        session.flush()


def send(
    session: Any,
    dag_id: str,
    run_id: str,
    task_id: str,
    *,
    conn_id: str,
    message: str,
    accepted: Iterable[tuple[str, str]] = (),
    rejected: Iterable[tuple[str, str]] = (),
    unsubscribed: Iterable[str] = (),
    in_doubt: Iterable[str] = (),
    parts: int = 1,
) -> None:
    """One try of one task sending ``message``: claims, then each outcome, as a real send journals them.

    ``accepted`` are (number, message id), ``rejected`` (number, code), with ``parts`` SMS parts each
    (priced by the connection's ``prices`` extra, as a real send does); given ``in_doubt`` numbers, the
    request is claimed and never answered (a worker killed mid-request).
    """
    ensure_run(session, dag_id, run_id)
    ledger = SendLedger(MetastoreChunks(session, dag_id, run_id, task_id))
    accepted, rejected, unsubscribed, in_doubt = list(accepted), list(rejected), list(unsubscribed), list(in_doubt)
    numbers = [n for n, _ in accepted] + [n for n, _ in rejected] + unsubscribed + in_doubt
    journal = ledger.journal(message, conn_id)
    journal.begin([numbers], width=1)
    journal.before(0)
    answered = Part(
        accepted=[{"to": n, "message_id": m} for n, m in accepted],
        rejected=[{"to": n, "code": c, "reason": "refused"} for n, c in rejected],
        unsubscribed=unsubscribed,
        segments=parts * len(accepted),
    )
    if in_doubt:  # the worker died with this request unanswered: nothing after the claim
        return
    journal.after(0, answered)
    journal.end()
