"""What the SMS page shows, read server-side from the metadata database (runs in the API server).

Every function takes the request's ORM session and ``dag_ids``, the DAGs the user may read (None: all),
and returns plain JSON-ready dicts in which phone numbers are masked (``core.phone.mask_number``):

- ``outbox``: recent sends per task instance from the send ledgers (``state.ledger_reads``), each
  recipient's outcome (accepted, rejected, unsubscribed, in doubt) and, once reported, its delivery
  status, from the webhook receipts (``state.webhook_receipts``) and the results of
  ``SmsDeliverySensor`` tasks in the same DAG runs; filtered by connection, DAG and status, one page
  at a time;
- ``inbox``: replies, each with what consumed it: the DAG runs its asset event started (webhook or
  ``AssetWatcher``), the ``InboundSmsSensor`` that returned it, or the approval it answered;
- ``spend``: SMS parts and estimated cost per day and per DAG, from what each send recorded in its
  ledger (the connection's dry-run price table at the time);
- ``opt_outs`` and ``audit``: the opt-out register (``state.opt_outs``) and Airflow's audit log
  entries of the page's changes to it.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_sms.connections import CONNECTION_TYPES, environment_connections
from airflow_provider_sms.core.phone import mask_number

WINDOW = timedelta(days=30)  # the ledger's own retention: nothing older is kept
SMS_CONN_TYPES = tuple(CONNECTION_TYPES)
OUTCOMES = ("accepted", "rejected", "unsubscribed", "in doubt")  # what the ledger says of each recipient
MAX_RECIPIENTS_SHOWN = 100  # per send on one page; the counts cover all of them
INBOX_LIMIT = 200
AUDIT_EVENTS = ("sms.opt_out.add", "sms.opt_out.remove")
RESTRICTED = "(hidden)"  # a DAG the reader may not see, named in a consumer


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: Any) -> str | None:
    if isinstance(moment, datetime):
        aware = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
        return aware.astimezone(timezone.utc).isoformat(timespec="seconds")
    return str(moment) if moment else None


def _allowed(dag_id: str | None, dag_ids: Collection[str] | None) -> bool:
    return dag_ids is None or (dag_id is not None and dag_id in dag_ids)


# --- connections ------------------------------------------------------------------------------------


def connections(session: Any) -> list[dict[str, str]]:
    """SMS connections (environment variables and the metadata database): id and provider type."""
    import sqlalchemy as sa
    from airflow.models.connection import Connection

    found = {conn.conn_id: conn.conn_type.lower() for conn in environment_connections()}
    query = sa.select(Connection.conn_id, Connection.conn_type).where(Connection.conn_type.in_(SMS_CONN_TYPES))
    for conn_id, conn_type in session.execute(query):
        found.setdefault(conn_id, conn_type)
    return [{"conn_id": conn_id, "conn_type": found[conn_id]} for conn_id in sorted(found)]


# --- outbox -----------------------------------------------------------------------------------------


def _outcome(person: Any) -> tuple[str, str | None]:
    """A ledger recipient's outcome word and refusal code."""
    if person.accepted is not None:
        return "accepted", None
    if person.code == "unsubscribed":
        return "unsubscribed", None
    if person.in_doubt:
        return "in doubt", person.code
    if person.code is not None:
        return "rejected", person.code
    return "in doubt", None


def _person_conn(person: Any, ledger_conns: set[str]) -> str | None:
    if person.accepted is not None and person.accepted.get("conn_id"):
        return str(person.accepted["conn_id"])
    if person.claimed_by:
        return str(person.claimed_by)
    return next(iter(ledger_conns)) if len(ledger_conns) == 1 else None


def outbox(
    session: Any,
    *,
    dag_ids: Collection[str] | None,
    conn_id: str | None = None,
    dag_id: str | None = None,
    status: str | None = None,
    limit: int = 25,
    offset: int = 0,
    now: datetime | None = None,
) -> dict[str, Any]:
    """One page of recent sends, newest first, with each recipient's outcome and delivery status.

    ``status`` keeps sends with at least one recipient in that state (an outcome, or a delivery status
    such as ``delivered``), and only those recipients; ``dag_id`` one DAG; ``conn_id`` recipients sent
    (or claimed) through that connection. The ledgers are listed first (cheap) and read a batch at a
    time, newest first, until the page is full: a page costs what it shows, not what is stored.
    ``scanned`` is how many sends the window holds before the connection and status filters;
    ``has_more`` whether an older page has anything.
    """
    from airflow_provider_sms.state.ledger_reads import ledger_index, load

    since = (now or _now()) - WINDOW
    index = ledger_index(session, since=since, dag_ids=dag_ids)
    dags = sorted({ledger.dag_id for ledger in index})
    if dag_id:
        index = [ledger for ledger in index if ledger.dag_id == dag_id]
    wanted = offset + limit + 1
    matched: list[dict[str, Any]] = []
    position, batch = 0, 50
    while position < len(index) and len(matched) < wanted:
        chunk = load(session, index[position : position + batch])
        position += batch
        batch = min(batch * 2, 1000)
        sends = [send for send in map(_send_of, chunk, [conn_id] * len(chunk)) if send["recipients"]]
        if status:
            if status not in OUTCOMES:  # a delivery status: the reports decide which sends match
                _add_delivery(session, sends)
            sends = [s for s in sends if any(status in (r["status"], r["delivery"]) for r in s["recipients"])]
        matched += sends
    page = matched[offset : offset + limit]
    if not status or status in OUTCOMES:
        _add_delivery(session, page)
    for send in page:
        rows = send.pop("recipients")
        send["counts"] = dict(
            Counter(r["status"] for r in rows) + Counter(r["delivery"] for r in rows if r["delivery"])
        )
        picked = [r for r in rows if not status or status in (r["status"], r["delivery"])]
        send["recipients"] = picked[:MAX_RECIPIENTS_SHOWN]
        send["more"] = max(0, len(picked) - MAX_RECIPIENTS_SHOWN)
        send.pop("ledger")
    return {
        "sends": page,
        "offset": offset,
        "limit": limit,
        "has_more": len(matched) > offset + limit,
        "scanned": len(index),
        "dags": dags,
    }


def _send_of(ledger: Any, conn_id: str | None) -> dict[str, Any]:
    """One ledger as the outbox shows it: the task instance and each recipient (of ``conn_id``)."""
    view = ledger.view()
    conns = {str(c["conn"]) for c in ledger.chunks or [] if c.get("conn")}
    rows = []
    for people in view.texts.values():
        for number, person in people.items():
            via = _person_conn(person, conns)
            if conn_id and via != conn_id:
                continue
            outcome, code = _outcome(person)
            message_id = (person.accepted or {}).get("message_id")
            rows.append(
                {
                    "number": mask_number(number),
                    "status": outcome,
                    "code": code,
                    "conn_id": via,
                    "message_id": str(message_id) if message_id else None,
                    "delivery": None,
                }
            )
    return {
        "ledger": ledger,
        "dag_id": ledger.dag_id,
        "run_id": ledger.run_id,
        "task_id": ledger.task_id,
        "map_index": ledger.map_index,
        "at": _iso(ledger.updated_at),
        "tries": sorted(view.tries),
        "recipients": rows,
    }


def _add_delivery(session: Any, sends: list[dict[str, Any]]) -> None:
    """Fill each accepted recipient's ``delivery``: from the webhook reports (final first, else the
    latest), else from what an ``SmsDeliverySensor`` in the same run last read."""
    wanted = [r for s in sends for r in s["recipients"] if r["message_id"] and r["conn_id"]]
    if not wanted:
        return
    by_sensor = _sensor_reports(session, {(s["ledger"].dag_id, s["ledger"].run_id) for s in sends})
    by_webhook = _webhook_reports(session, {(r["conn_id"], r["message_id"]) for r in wanted})
    for row in wanted:
        key = (row["conn_id"], row["message_id"])
        row["delivery"] = by_webhook.get(key) or by_sensor.get(row["message_id"])


def _webhook_reports(session: Any, items: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The status each message's webhook reports recorded: a final one first, else the latest."""
    from airflow_provider_sms.assets import STATUS
    from airflow_provider_sms.core.results import FINAL_STATUSES
    from airflow_provider_sms.state.webhook_receipts import digest, statuses_of

    subjects = {digest(conn_id, message_id): (conn_id, message_id) for conn_id, message_id in items}
    found: dict[tuple[str, str], tuple[bool, datetime, str]] = {}
    for subject, status, received_at in statuses_of(session, kind=STATUS, subjects=list(subjects)):
        key = subjects[subject]
        rank = (status in FINAL_STATUSES, received_at)
        if key not in found or rank > found[key][:2]:
            found[key] = (*rank, status)
    return {key: value[2] for key, value in found.items()}


def _sensor_reports(session: Any, runs: set[tuple[str, str]]) -> dict[str, str]:
    """message id -> status from the results of ``SmsDeliverySensor`` tasks in these DAG runs."""
    if not runs:
        return {}
    import sqlalchemy as sa
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel  # type: ignore[attr-defined,unused-ignore]

    dag_ids = {dag for dag, _ in runs}
    run_ids = {run for _, run in runs}
    sensors = (
        sa.select(TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id)
        .where(TaskInstance.dag_id.in_(dag_ids), TaskInstance.run_id.in_(run_ids))
        .where(TaskInstance.operator == "SmsDeliverySensor")
    )
    found = {(d, r, t) for d, r, t in session.execute(sensors) if (d, r) in runs}
    if not found:
        return {}
    query = sa.select(XComModel).where(
        XComModel.key == "return_value",
        XComModel.dag_id.in_(dag_ids),
        XComModel.run_id.in_(run_ids),
        XComModel.task_id.in_({t for _, _, t in found}),
    )
    statuses: dict[str, str] = {}
    for xcom in session.scalars(query):
        if (xcom.dag_id, xcom.run_id, xcom.task_id) not in found:
            continue
        value = _decoded(XComModel.deserialize_value(xcom))
        for report in value.get("reports", []) if isinstance(value, dict) else []:
            if isinstance(report, dict) and report.get("message_id") and report.get("status"):
                statuses[str(report["message_id"])] = str(report["status"])
    return statuses


def _decoded(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# --- inbox ------------------------------------------------------------------------------------------


def _moment_of(value: Any) -> datetime | None:
    """An ISO time as the ledger and message dicts write it (UTC when it names no zone); None otherwise."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _reply(message: dict[str, Any], at: Any, via: str) -> dict[str, Any]:
    text = str(message.get("text") or "")
    return {
        "at": _iso(_moment_of(message.get("received_at"))) or _iso(at),
        "from": mask_number(str(message.get("from_number") or "")),
        "text": text[:320],
        "message_id": message.get("message_id"),
        "via": via,
        "consumed_by": [],
    }


def inbox(session: Any, *, dag_ids: Collection[str] | None, conn_id: str, limit: int = INBOX_LIMIT) -> dict[str, Any]:
    """Replies on ``conn_id``, newest first, each with what consumed it."""
    replies = (
        _asset_replies(session, conn_id, dag_ids, limit)
        + _waiter_replies(session, conn_id, dag_ids, limit)
        + _approval_replies(session, conn_id, dag_ids, limit)
    )
    replies.sort(key=lambda r: r["at"] or "", reverse=True)
    return {"replies": replies[:limit]}


def _asset_replies(session: Any, conn_id: str, dag_ids: Collection[str] | None, limit: int) -> list[dict]:
    import sqlalchemy as sa
    from airflow.models.asset import AssetEvent, AssetModel
    from sqlalchemy.orm import selectinload

    from airflow_provider_sms.assets import INBOUND, asset_uri

    webhook = session.scalars(sa.select(AssetModel.id).where(AssetModel.uri == asset_uri(conn_id, INBOUND))).all()
    watched = _watched_assets(session, conn_id)
    asset_ids = {*webhook, *watched}
    if not asset_ids:
        return []
    query = (
        sa.select(AssetEvent)
        .where(AssetEvent.asset_id.in_(asset_ids))
        .options(selectinload(AssetEvent.created_dagruns))
        .order_by(AssetEvent.timestamp.desc())
        .limit(limit)
    )
    found = []
    for event in session.scalars(query):
        extra = event.extra if isinstance(event.extra, dict) else {}
        payload = extra.get("payload")
        message = extra.get("message") or (payload.get("message") if isinstance(payload, dict) else None)
        if not isinstance(message, dict):
            continue
        reply = _reply(message, event.timestamp, "webhook" if event.asset_id in webhook else "asset watcher")
        reply["asset_event_id"] = event.id
        for run in event.created_dagruns:
            shown = _allowed(run.dag_id, dag_ids)
            reply["consumed_by"].append(
                {
                    "kind": "asset event",
                    "dag_id": run.dag_id if shown else RESTRICTED,
                    "run_id": run.run_id if shown else None,
                    "detail": f"asset event {event.id} started the run",
                }
            )
        if not event.created_dagruns:
            reply["consumed_by"].append({"kind": "asset event", "detail": f"asset event {event.id}, no run yet"})
        found.append(reply)
    return found


def _watched_assets(session: Any, conn_id: str) -> list[int]:
    """Assets an ``InboundSmsEventTrigger`` on ``conn_id`` watches (``AssetWatcher``)."""
    import sqlalchemy as sa

    try:
        from airflow.models.asset import AssetWatcherModel
        from airflow.models.trigger import Trigger
    except ImportError:
        return []
    query = (
        sa.select(AssetWatcherModel.asset_id, Trigger)
        .join(Trigger, Trigger.id == AssetWatcherModel.trigger_id)
        .where(Trigger.classpath.like("airflow_provider_sms.%InboundSmsEventTrigger"))
    )
    found = []
    for asset_id, trigger in session.execute(query):
        try:
            kwargs = trigger.kwargs
        except Exception:  # noqa: S112 - kwargs encrypted with another key: not this deployment's to show
            continue
        if isinstance(kwargs, dict) and kwargs.get("sms_conn_id") == conn_id:
            found.append(asset_id)
    return found


def _rendered_conn(session: Any, tis: Iterable[Any]) -> dict[tuple[str, str, str, int], str]:
    """The rendered ``sms_conn_id`` of each task instance (its templated field)."""
    import sqlalchemy as sa
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as Rtif

    keys = {(ti.dag_id, ti.run_id, ti.task_id, ti.map_index) for ti in tis}
    if not keys:
        return {}
    query = sa.select(Rtif.dag_id, Rtif.run_id, Rtif.task_id, Rtif.map_index, Rtif.rendered_fields).where(
        Rtif.dag_id.in_({k[0] for k in keys}), Rtif.run_id.in_({k[1] for k in keys})
    )
    found = {}
    for dag_id, run_id, task_id, map_index, fields in session.execute(query):
        fields = _decoded(fields)
        if (dag_id, run_id, task_id, map_index) in keys and isinstance(fields, dict):
            found[(dag_id, run_id, task_id, map_index)] = str(_decoded(fields.get("sms_conn_id")) or "")
    return found


def _finished_tis(session: Any, operators: Collection[str], dag_ids: Collection[str] | None, limit: int) -> list:
    import sqlalchemy as sa
    from airflow.models.taskinstance import TaskInstance

    query = sa.select(TaskInstance).where(TaskInstance.operator.in_(list(operators)))
    if dag_ids is not None:
        query = query.where(TaskInstance.dag_id.in_(list(dag_ids)))
    query = query.where(TaskInstance.end_date >= _now() - WINDOW).order_by(TaskInstance.end_date.desc()).limit(limit)
    return list(session.scalars(query))


def _waiter_replies(session: Any, conn_id: str, dag_ids: Collection[str] | None, limit: int) -> list[dict]:
    """Replies ``InboundSmsSensor`` tasks on ``conn_id`` returned (their result is the message)."""
    import sqlalchemy as sa
    from airflow.models.xcom import XComModel  # type: ignore[attr-defined,unused-ignore]

    tis = _finished_tis(session, ("InboundSmsSensor",), dag_ids, limit)
    conns = _rendered_conn(session, tis)
    mine = {(ti.dag_id, ti.run_id, ti.task_id, ti.map_index): ti for ti in tis}
    mine = {key: ti for key, ti in mine.items() if conns.get(key) == conn_id}
    if not mine:
        return []
    query = sa.select(XComModel).where(
        XComModel.key == "return_value",
        XComModel.dag_id.in_({k[0] for k in mine}),
        XComModel.run_id.in_({k[1] for k in mine}),
        XComModel.task_id.in_({k[2] for k in mine}),
    )
    found = []
    for xcom in session.scalars(query):
        ti = mine.get((xcom.dag_id, xcom.run_id, xcom.task_id, xcom.map_index))
        message = _decoded(XComModel.deserialize_value(xcom))
        if ti is None or not isinstance(message, dict) or "from_number" not in message:
            continue
        reply = _reply(message, message.get("received_at") or ti.end_date, "inbox poll")
        reply["consumed_by"].append(
            {"kind": "waiter", "dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id, "detail": "returned it"}
        )
        found.append(reply)
    return found


def _approval_replies(session: Any, conn_id: str, dag_ids: Collection[str] | None, limit: int) -> list[dict]:
    """Answers by SMS to the provider's approval operators on ``conn_id`` (Airflow's HITL records)."""
    import sqlalchemy as sa

    try:
        from airflow.models.hitl import HITLDetail
    except ImportError:  # before Airflow 3.1
        return []
    operators = ("SmsApprovalOperator", "SmsHITLOperator", "SmsHITLBranchOperator")
    tis = _finished_tis(session, operators, dag_ids, limit)
    conns = _rendered_conn(session, tis)
    mine = {ti.id: ti for ti in tis if conns.get((ti.dag_id, ti.run_id, ti.task_id, ti.map_index)) == conn_id}
    if not mine:
        return []
    found = []
    for detail in session.scalars(sa.select(HITLDetail).where(HITLDetail.ti_id.in_(list(mine)))):
        by = detail.responded_by if isinstance(detail.responded_by, dict) else {}
        if not str(by.get("id", "")).startswith("sms:"):
            continue  # answered in the UI
        ti = mine[detail.ti_id]
        chosen = ", ".join(detail.chosen_options or [])
        found.append(
            {
                "at": _iso(detail.responded_at),
                "from": str(by["id"])[4:],  # already masked by the trigger
                "text": None,
                "message_id": None,
                "via": "inbox poll",
                "consumed_by": [
                    {
                        "kind": "approval",
                        "dag_id": ti.dag_id,
                        "run_id": ti.run_id,
                        "task_id": ti.task_id,
                        "detail": f"answered: {chosen}" if chosen else "answered",
                    }
                ],
            }
        )
    return found


# --- spend ------------------------------------------------------------------------------------------


def spend(
    session: Any,
    *,
    dag_ids: Collection[str] | None,
    conn_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Messages accepted, SMS parts and estimated cost per day and per DAG over the ledger's window
    (30 days), from what each send recorded (``state.ledger``'s ``sms`` part, priced by the connection's
    ``prices`` extra at the time, as a dry run estimates)."""
    from airflow_provider_sms.state.ledger_reads import chunks_since

    since = (now or _now()) - WINDOW
    by_day: dict[str, Counter[str]] = defaultdict(Counter)
    by_dag: dict[str, Counter[str]] = defaultdict(Counter)
    for dag_id, chunk in chunks_since(session, since=since, dag_ids=dag_ids):
        for item in sent_items([chunk]):
            if conn_id and item["conn_id"] != conn_id:
                continue
            day = (item["at"] or since).date().isoformat()
            for bucket in (by_day[day], by_dag[dag_id]):
                for name in ("messages", "parts", "cost", "unpriced"):
                    bucket[name] += item[name]
    rows_day = [{"day": day, **_rounded(v)} for day, v in sorted(by_day.items(), reverse=True)]
    rows_dag = [{"dag_id": dag, **_rounded(v)} for dag, v in sorted(by_dag.items(), key=lambda kv: -kv[1]["parts"])]
    total: Counter[str] = Counter()
    for bucket in by_day.values():
        total.update(bucket)
    return {"by_day": rows_day, "by_dag": rows_dag, "total": _rounded(total)}


def _rounded(bucket: Counter[str]) -> dict[str, Any]:
    return {
        "messages": int(bucket["messages"]),
        "parts": int(bucket["parts"]),
        "cost": round(float(bucket["cost"]), 4),
        "unpriced": int(bucket["unpriced"]),
    }


def sent_items(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One item per chunk and text that recorded accepted messages (the chunk's ``sms`` part):
    ``{"at", "conn_id", "messages", "parts", "cost", "unpriced"}``. Parts are the parts per message
    times the messages (one per message where the provider's answer did not say); messages sent through
    a connection without ``prices`` count as unpriced."""
    items = []
    for chunk in chunks:
        sms = chunk.get("sms")
        for part in sms.values() if isinstance(sms, dict) else ():
            accepted = _count(part.get("accepted")) if isinstance(part, dict) else 0
            if not accepted:
                continue
            cost = part.get("cost")
            priced = isinstance(cost, (int, float)) and not isinstance(cost, bool)
            items.append(
                {
                    "at": _moment_of(chunk.get("at")),
                    "conn_id": str(chunk.get("conn") or ""),
                    "messages": accepted,
                    "parts": max(_count(part.get("parts")), 1) * accepted,
                    "cost": float(cost) if priced else 0.0,
                    "unpriced": _count(part.get("unpriced")) if priced else accepted,
                }
            )
    return items


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


# --- opt-outs ---------------------------------------------------------------------------------------


def register(session: Any) -> Any:
    """The opt-out register through the request's session (a change commits with its audit entry); a
    page view never writes the register's snapshot."""
    from airflow_provider_sms.state.opt_outs import OptOutRegister
    from airflow_provider_sms.state.variables import VariableKeys

    return OptOutRegister(store=VariableKeys(session=session), refresh=False)


def opt_outs(session: Any, *, with_ids: bool = False) -> list[dict[str, Any]]:
    """The opt-out register, newest first, numbers masked. ``with_ids`` adds each entry's ``id`` (the
    digest of its number, which names it for removal): only for users who may edit Variables, who can
    read the whole numbers there anyway; a short hash of a phone number is no secret from a guesser."""
    from airflow_provider_sms.state.opt_outs import digest

    return [
        {
            **({"id": digest(entry.number)} if with_ids else {}),
            "number": mask_number(entry.number),
            "source": entry.source,
            "word": entry.word,
            "by": entry.by,
            "at": _iso(entry.at),
        }
        for entry in register(session).entries()
    ]


def opt_out_by_id(session: Any, entry_id: str) -> Any:
    """The register's entry whose ``id`` (the digest of its number) is ``entry_id``, or None."""
    from airflow_provider_sms.state.opt_outs import digest

    return next((e for e in register(session).entries() if digest(e.number) == entry_id), None)


def audit(session: Any, *, limit: int = 50) -> list[dict[str, Any]]:
    """Who changed the register through the page: Airflow's audit log (``Log``), newest first."""
    import sqlalchemy as sa
    from airflow.models.log import Log

    query = sa.select(Log).where(Log.event.in_(AUDIT_EVENTS)).order_by(Log.dttm.desc(), Log.id.desc()).limit(limit)
    lines = []
    for entry in session.scalars(query):
        extra = _decoded(entry.extra) if entry.extra else {}
        extra = extra if isinstance(extra, dict) else {}
        lines.append(
            {
                "at": _iso(entry.dttm),
                "who": entry.owner_display_name or entry.owner,
                "action": "added" if entry.event.endswith(".add") else "removed",
                "number": extra.get("number"),
                "reason": extra.get("reason"),
            }
        )
    return lines
