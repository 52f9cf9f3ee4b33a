"""The SMS page's data, read from a real Airflow metadata database (SQLite) seeded as real runs leave it:
per-recipient outcomes and delivery statuses from the ledgers, receipts and delivery sensors; replies
and what consumed them; spend per day and DAG; the opt-out register and its audit lines."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_sms._compat import AIRFLOW_V_3

if not AIRFLOW_V_3:
    pytest.skip("the SMS page is part of Airflow 3's UI (3.1+)", allow_module_level=True)

from airflow_provider_sms.assets import asset_name, asset_uri
from airflow_provider_sms.core.results import DeliveryReport, InboundMessage
from airflow_provider_sms.ui import data
from airflow_provider_sms.webhooks.recorder import AssetRecorder
from tests.ui import seed


@pytest.fixture
def session(airflow_db: None) -> Iterator[Any]:
    from airflow.utils.session import create_session

    with create_session() as opened:
        yield opened


@pytest.fixture
def names(request: pytest.FixtureRequest) -> dict[str, str]:
    """DAG and connection ids of this test alone (the database is shared by the session)."""
    tag = uuid.uuid4().hex[:8]
    return {"dag": f"dag_{tag}", "other": f"other_{tag}", "conn": f"conn_{tag}", "run": f"run_{tag}"}


def outbox_of(session: Any, names: dict[str, str], **kwargs: Any) -> dict[str, Any]:
    return data.outbox(session, dag_ids={names["dag"], names["other"]}, **kwargs)


def test_each_recipient_shows_its_outcome_with_the_number_masked(session: Any, names: dict[str, str]) -> None:
    seed.send(
        session,
        names["dag"],
        names["run"],
        "notify",
        conn_id=names["conn"],
        message="Your order shipped",
        accepted=[("+61400000001", "m-1")],
        rejected=[("+61400000002", "invalid_number")],
        unsubscribed=["+61400000003"],
    )
    seed.send(
        session, names["dag"], names["run"], "notify", conn_id=names["conn"], message="2nd", in_doubt=["+61400000004"]
    )
    page = outbox_of(session, names)
    assert (len(page["sends"]), page["has_more"], page["scanned"]) == (1, False, 1)
    (sent,) = page["sends"]
    assert (sent["dag_id"], sent["run_id"], sent["task_id"], sent["map_index"]) == (
        names["dag"],
        names["run"],
        "notify",
        -1,
    )
    shown = {r["number"]: (r["status"], r["code"], r["message_id"]) for r in sent["recipients"]}
    assert shown == {
        "+614*****001": ("accepted", None, "m-1"),
        "+614*****002": ("rejected", "invalid_number", None),
        "+614*****003": ("unsubscribed", None, None),
        "+614*****004": ("in doubt", None, None),
    }
    assert sent["counts"] == {"accepted": 1, "rejected": 1, "unsubscribed": 1, "in doubt": 1}
    assert "+61400000001" not in json.dumps(page)  # no whole number anywhere in the answer


def test_filters_by_dag_status_and_connection_and_pages(session: Any, names: dict[str, str]) -> None:
    for i in range(5):
        seed.send(
            session,
            names["dag"] if i % 2 == 0 else names["other"],
            f"{names['run']}_{i}",
            "notify",
            conn_id=names["conn"] if i < 4 else "elsewhere",
            message="hi",
            accepted=[(f"+6140000010{i}", f"m{i}")],
            rejected=[("+61400000200", "invalid_number")] if i == 2 else [],
        )
    assert len(outbox_of(session, names)["sends"]) == 5
    assert [s["run_id"][-1] for s in outbox_of(session, names, dag_id=names["dag"])["sends"]] == ["4", "2", "0"]
    rejected = outbox_of(session, names, status="rejected")
    assert len(rejected["sends"]) == 1 and [r["status"] for r in rejected["sends"][0]["recipients"]] == ["rejected"]
    assert len(outbox_of(session, names, conn_id=names["conn"])["sends"]) == 4
    page = outbox_of(session, names, limit=2, offset=2)
    assert page["has_more"] and [s["run_id"][-1] for s in page["sends"]] == ["2", "1"]
    assert not outbox_of(session, names, limit=2, offset=3)["has_more"]
    assert data.outbox(session, dag_ids={names["other"]}, dag_id=names["dag"])["sends"] == []  # not readable


def test_a_dag_the_reader_may_not_see_is_left_out(session: Any, names: dict[str, str]) -> None:
    seed.send(
        session, names["dag"], names["run"], "t", conn_id=names["conn"], message="x", accepted=[("+61400000001", "m")]
    )
    assert data.outbox(session, dag_ids={names["other"]})["sends"] == []
    assert data.outbox(session, dag_ids=set())["sends"] == []
    assert data.spend(session, dag_ids={names["other"]}, conn_id=names["conn"])["total"]["messages"] == 0


def test_delivery_statuses_come_from_webhook_reports_and_delivery_sensors(session: Any, names: dict[str, str]) -> None:
    from airflow.models.asset import AssetActive, AssetModel

    conn = names["conn"]
    model = AssetModel(name=asset_name(conn, "status"), uri=asset_uri(conn, "status"))
    session.add(model)
    session.flush()
    session.add(AssetActive.for_asset(model))
    seed.send(
        session,
        names["dag"],
        names["run"],
        "notify",
        conn_id=conn,
        message="hello",
        accepted=[("+61400000001", "m-1"), ("+61400000002", "m-2"), ("+61400000003", "m-3")],
    )
    session.commit()
    at = datetime.now(timezone.utc)
    sent = DeliveryReport("cellcast", "m-1", "+61400000001", "sent", "sent", at)
    assert AssetRecorder().record(conn, [], [sent]).recorded == 1
    reports = [
        DeliveryReport("cellcast", "m-1", "+61400000001", "delivered", "delivered", at),
        DeliveryReport("cellcast", "m-2", "+61400000002", "failed", "failed", at),
    ]
    assert AssetRecorder().record(conn, [], reports).recorded == 2
    _delivery_sensor_result(session, names, [{"message_id": "m-3", "status": "expired"}])
    (sent,) = outbox_of(session, names)["sends"]
    assert {r["number"]: r["delivery"] for r in sent["recipients"]} == {
        "+614*****001": "delivered",
        "+614*****002": "failed",
        "+614*****003": "expired",
    }
    delivered = outbox_of(session, names, status="delivered")
    assert [r["number"] for r in delivered["sends"][0]["recipients"]] == ["+614*****001"]


def _task_instance(session: Any, names: dict[str, str], task_id: str, operator: str, **rendered: Any) -> Any:
    """A finished task instance of ``operator`` with its rendered fields, as a real run leaves one."""
    import sqlalchemy as sa
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.taskinstance import TaskInstance

    seed.ensure_run(session, names["dag"], names["run"])
    ti_id = uuid.uuid4()
    session.execute(
        sa.insert(TaskInstance.__table__).values(
            id=ti_id,
            dag_id=names["dag"],
            run_id=names["run"],
            task_id=task_id,
            map_index=-1,
            state="success",
            operator=operator,
            pool="default_pool",
            end_date=datetime.now(timezone.utc),
        )
    )
    session.execute(
        sa.insert(RenderedTaskInstanceFields.__table__).values(
            dag_id=names["dag"], task_id=task_id, run_id=names["run"], map_index=-1, rendered_fields=rendered
        )
    )
    return session.get(TaskInstance, ti_id)


def _xcom(session: Any, ti: Any, value: Any) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel

    run = session.query(DagRun).filter(DagRun.dag_id == ti.dag_id, DagRun.run_id == ti.run_id).one()
    session.add(
        XComModel(
            dag_run_id=run.id,
            task_id=ti.task_id,
            map_index=-1,
            key="return_value",
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            value=XComModel.serialize_value(value),
        )
    )
    session.flush()


def _delivery_sensor_result(session: Any, names: dict[str, str], reports: list[dict[str, Any]]) -> None:
    ti = _task_instance(session, names, "wait_for_delivery", "SmsDeliverySensor", sms_conn_id=names["conn"])
    _xcom(session, ti, {"provider": "cellcast", "reports": reports, "delivered": [], "undelivered": []})


def test_the_inbox_shows_replies_and_what_consumed_them(session: Any, names: dict[str, str]) -> None:
    from airflow.models.asset import AssetActive, AssetEvent, AssetModel
    from airflow.models.dagrun import DagRun

    conn = names["conn"]
    model = AssetModel(name=asset_name(conn, "inbound"), uri=asset_uri(conn, "inbound"))
    session.add(model)
    session.flush()
    session.add(AssetActive.for_asset(model))
    session.commit()
    at = datetime.now(timezone.utc) - timedelta(minutes=5)
    reply = InboundMessage("cloudware", "r-1", "+61400000009", "+61400000000", "YES please", at)
    assert AssetRecorder().record(conn, [reply], []).recorded == 1
    event = session.query(AssetEvent).filter(AssetEvent.asset_id == model.id).one()
    seed.ensure_run(session, names["dag"], names["run"])
    run = session.query(DagRun).filter(DagRun.dag_id == names["dag"], DagRun.run_id == names["run"]).one()
    run.consumed_asset_events.append(event)
    waited = InboundMessage("cloudware", "r-2", "+61400000008", "+61400000000", "NO", at + timedelta(minutes=1))
    ti = _task_instance(session, names, "wait_for_reply", "InboundSmsSensor", sms_conn_id=conn)
    _xcom(session, ti, waited.to_dict())
    other = _task_instance(session, names, "elsewhere", "InboundSmsSensor", sms_conn_id="another_conn")
    _xcom(session, other, waited.to_dict())
    session.commit()

    replies = data.inbox(session, dag_ids={names["dag"]}, conn_id=conn)["replies"]
    assert [(r["from"], r["text"], r["via"]) for r in replies] == [
        ("+614*****008", "NO", "inbox poll"),
        ("+614*****009", "YES please", "webhook"),
    ]
    assert replies[0]["consumed_by"] == [
        {
            "kind": "waiter",
            "dag_id": names["dag"],
            "run_id": names["run"],
            "task_id": "wait_for_reply",
            "detail": "returned it",
        }
    ]
    (started,) = replies[1]["consumed_by"]
    assert (started["kind"], started["dag_id"], started["run_id"]) == ("asset event", names["dag"], names["run"])
    hidden = data.inbox(session, dag_ids=set(), conn_id=conn)["replies"]
    assert [c["dag_id"] for r in hidden for c in r["consumed_by"]] == [data.RESTRICTED]  # the webhook's run only


def test_spend_sums_parts_and_cost_per_day_and_dag(
    session: Any, names: dict[str, str], make_conn: Callable[..., str]
) -> None:
    make_conn(names["conn"], "cloudware", host="http://127.0.0.1:9", prices={"AU": 0.05, "default": 0.08})
    numbers = [("+61400000301", "m1"), ("+61400000302", "m2"), ("+447700900123", "m3")]
    seed.send(session, names["dag"], names["run"], "a", conn_id=names["conn"], message="x", accepted=numbers, parts=2)
    seed.send(session, names["other"], names["run"], "b", conn_id=names["conn"], message="y", accepted=numbers[:1])
    seed.send(session, names["other"], names["run"], "c", conn_id="elsewhere", message="z", accepted=numbers[:1])
    spent = data.spend(session, dag_ids={names["dag"], names["other"]}, conn_id=names["conn"])
    today = datetime.now(timezone.utc).date().isoformat()
    assert spent["by_day"] == [{"day": today, "messages": 4, "parts": 7, "cost": 0.41, "unpriced": 0}]
    assert spent["by_dag"] == [
        {"dag_id": names["dag"], "messages": 3, "parts": 6, "cost": 0.36, "unpriced": 0},  # 2 x (0.05 + 0.05 + 0.08)
        {"dag_id": names["other"], "messages": 1, "parts": 1, "cost": 0.05, "unpriced": 0},
    ]
    everywhere = data.spend(session, dag_ids={names["dag"], names["other"]})
    assert everywhere["total"]["messages"] >= 5 and everywhere["total"]["unpriced"] >= 1  # "elsewhere" has no prices


def test_opt_outs_and_their_audit_lines(session: Any) -> None:
    from airflow.models.log import Log

    number = "+61400000777"
    register = data.register(session)
    register.remove(number, source="test")  # a clean slate for this number
    register.add(number, source="ui:alice", by="alice")
    session.add(Log(event="sms.opt_out.add", owner="alice", extra=json.dumps({"number": "+614*****777"})))
    session.flush()
    (entry,) = [e for e in data.opt_outs(session, with_ids=True) if e["number"] == "+614*****777"]
    assert all("id" not in e for e in data.opt_outs(session))  # a viewer gets no hash of a number
    assert (entry["source"], entry["by"]) == ("ui:alice", "alice")
    assert data.opt_out_by_id(session, entry["id"]).number == number
    assert data.opt_out_by_id(session, "0" * 16) is None
    (line,) = [a for a in data.audit(session) if a["number"] == "+614*****777"]
    assert (line["who"], line["action"]) == ("alice", "added")


def test_an_approval_answered_by_text_is_in_the_inbox_and_one_answered_in_the_ui_is_not(
    session: Any, names: dict[str, str]
) -> None:
    import sqlalchemy as sa
    from airflow.models.hitl import HITLDetail

    conn = names["conn"]
    by_text = _task_instance(session, names, "approve", "SmsApprovalOperator", sms_conn_id=conn)
    in_ui = _task_instance(session, names, "approve_too", "SmsApprovalOperator", sms_conn_id=conn)
    for ti, who in ((by_text, {"id": "sms:+614*****002", "name": "SMS from +614*****002"}), (in_ui, {"id": "alice"})):
        session.execute(
            sa.insert(HITLDetail.__table__).values(
                ti_id=ti.id,
                options=["Approve", "Reject"],
                subject="Publish?",
                params={},
                params_input={},
                responded_at=datetime.now(timezone.utc),
                responded_by=who,
                chosen_options=["Approve"],
            )
        )
    session.flush()
    (reply,) = data.inbox(session, dag_ids={names["dag"]}, conn_id=conn)["replies"]
    assert (reply["from"], reply["text"], reply["via"]) == ("+614*****002", None, "inbox poll")
    assert reply["consumed_by"] == [
        {
            "kind": "approval",
            "dag_id": names["dag"],
            "run_id": names["run"],
            "task_id": "approve",
            "detail": "answered: Approve",
        }
    ]
    assert data.inbox(session, dag_ids={names["other"]}, conn_id=conn)["replies"] == []  # a DAG not readable


def test_ledgers_kept_as_variables_are_shown_too(session: Any, names: dict[str, str]) -> None:
    """Airflow 3.0-3.2 keep the ledger in Variables (``VariableStore``): the page reads those as well."""
    from airflow_provider_sms.state.ledger import MemoryStore, SendLedger, VariableStore
    from airflow_provider_sms.state.variables import VariableKeys

    memory = MemoryStore()
    journal = SendLedger(memory).journal("hello", names["conn"])
    journal.begin([["+61400000001"]], width=1)
    journal.before(0)
    journal.after(0, seed.Part(accepted=[{"to": "+61400000001", "message_id": "v-1"}], segments=1))
    journal.end()
    store = VariableStore((names["dag"], names["run"], "notify", -1))
    written_at = datetime.now(timezone.utc).isoformat()
    for index, chunk in memory.chunks.items():  # as VariableStore.put writes them
        value = {**chunk, "scope": store.scope, "written_at": written_at}
        VariableKeys(session=session).set(f"{store.prefix}{index}", json.dumps(value))
    session.flush()
    (sent,) = outbox_of(session, names)["sends"]
    assert (sent["task_id"], sent["recipients"][0]["number"], sent["recipients"][0]["message_id"]) == (
        "notify",
        "+614*****001",
        "v-1",
    )
    spent = data.spend(session, dag_ids={names["dag"]}, conn_id=names["conn"])
    assert spent["total"]["messages"] == 1


def test_replies_an_asset_watcher_recorded_are_in_the_inbox_of_its_connection(
    session: Any, names: dict[str, str]
) -> None:
    from airflow.models.asset import AssetEvent, AssetModel, AssetWatcherModel
    from airflow.models.dagrun import DagRun
    from airflow.models.trigger import Trigger

    from airflow_provider_sms.triggers.inbound import InboundSmsEventTrigger

    classpath, kwargs = InboundSmsEventTrigger(sms_conn_id=names["conn"], match=["STOP"]).serialize()
    trigger = Trigger(classpath=classpath, kwargs=kwargs)
    asset = AssetModel(name=f"stops_{names['conn']}", uri=f"sms-test://{names['conn']}/stops")
    session.add_all([trigger, asset])
    session.flush()
    session.add(AssetWatcherModel(name="stops", trigger_id=trigger.id, asset_id=asset.id))
    message = InboundMessage("cloudware", "w-1", "+61400000066", None, "STOP", datetime.now(timezone.utc))
    event = AssetEvent(asset_id=asset.id, extra={"from_trigger": True, "payload": {"message": message.to_dict()}})
    session.add(event)
    session.flush()
    seed.ensure_run(session, names["dag"], names["run"])
    run = session.query(DagRun).filter(DagRun.dag_id == names["dag"], DagRun.run_id == names["run"]).one()
    run.consumed_asset_events.append(event)
    session.flush()
    (reply,) = data.inbox(session, dag_ids={names["dag"]}, conn_id=names["conn"])["replies"]
    assert (reply["from"], reply["text"], reply["via"]) == ("+614*****066", "STOP", "asset watcher")
    assert [(c["dag_id"], c["run_id"]) for c in reply["consumed_by"]] == [(names["dag"], names["run"])]
    assert data.inbox(session, dag_ids={names["dag"]}, conn_id="another_conn")["replies"] == []


def test_sends_older_than_the_ledgers_retention_are_left_out(session: Any, names: dict[str, str]) -> None:
    import sqlalchemy as sa
    from airflow.models.task_state_store import TaskStateStoreModel as Row

    for task in ("old", "new"):
        seed.send(
            session,
            names["dag"],
            names["run"],
            task,
            conn_id=names["conn"],
            message=task,
            accepted=[("+61400000001", task)],
        )
    long_ago = datetime.now(timezone.utc) - data.WINDOW - timedelta(days=1)
    session.execute(sa.update(Row).where(Row.dag_id == names["dag"], Row.task_id == "old").values(updated_at=long_ago))
    session.flush()
    assert [s["task_id"] for s in outbox_of(session, names)["sends"]] == ["new"]
    assert data.spend(session, dag_ids={names["dag"]})["total"]["messages"] == 1
