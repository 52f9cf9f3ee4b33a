"""``AssetRecorder`` against a real Airflow metadata database: one asset event per reply or report,
none for a retried call, none for a report older than one already recorded, none for an unused asset."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_sms._compat import AIRFLOW_V_3

if not AIRFLOW_V_3:
    pytest.skip("the webhook receiver is an Airflow 3 plugin", allow_module_level=True)

from airflow_provider_sms.assets import asset_name, asset_uri
from airflow_provider_sms.core.results import DeliveryReport, InboundMessage
from airflow_provider_sms.webhooks.recorder import AssetRecorder

AT = datetime(2030, 1, 1, 9, tzinfo=timezone.utc)


def reply(message_id: str = "r1", text: str = "YES") -> InboundMessage:
    return InboundMessage("cloudware", message_id, "+61400000001", "+61400000000", text, AT)


def report(status: str, provider_status: str | None = None, message_id: str = "m1") -> DeliveryReport:
    return DeliveryReport("clickatell", message_id, "+61400000001", status, provider_status or status, AT)


@pytest.fixture
def assets(airflow_db: None, request: pytest.FixtureRequest) -> str:
    """Both assets of a connection named after the test, as a DAG scheduled on them would create them."""
    from airflow.models.asset import AssetActive, AssetModel
    from airflow.utils.session import create_session

    conn_id = "conn_" + request.node.name.replace("[", "_").replace("]", "")[-60:]
    with create_session() as session:
        for kind in ("inbound", "status"):
            model = AssetModel(name=asset_name(conn_id, kind), uri=asset_uri(conn_id, kind))
            session.add(model)
            session.flush()
            session.add(AssetActive.for_asset(model))
    return conn_id


def events(conn_id: str, kind: str) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = (
            select(AssetEvent.extra)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.uri == asset_uri(conn_id, kind))
            .order_by(AssetEvent.id)
        )
        return list(session.scalars(query))


def test_each_reply_and_report_is_one_event_with_its_dict(assets: str) -> None:
    outcome = AssetRecorder().record(assets, [reply("r1"), reply("r2", "NO")], [report("delivered")])
    assert outcome.to_dict() == {"recorded": 3}
    inbound = events(assets, "inbound")
    assert [e["message"]["text"] for e in inbound] == ["YES", "NO"]
    assert inbound[0]["message"] == reply("r1").to_dict()
    assert inbound[0]["conn_id"] == assets and inbound[0]["message_id"] == "r1"
    (status,) = events(assets, "status")
    assert status["report"] == report("delivered").to_dict() and status["status"] == "delivered"


def test_a_retried_call_records_nothing_new(assets: str) -> None:
    recorder = AssetRecorder()
    recorder.record(assets, [reply()], [report("delivered")])
    again = recorder.record(assets, [reply()], [report("delivered")])
    assert again.to_dict() == {"duplicates": 2}
    assert AssetRecorder().record(assets, [reply()], []).duplicates == 1  # another worker: the database decides
    assert len(events(assets, "inbound")) == 1 and len(events(assets, "status")) == 1


def test_the_same_item_twice_in_one_call_is_one_event(assets: str) -> None:
    outcome = AssetRecorder().record(assets, [reply(), reply()], [])
    assert outcome.to_dict() == {"recorded": 1, "duplicates": 1}


def test_reports_progress_and_an_out_of_order_one_is_dropped(assets: str) -> None:
    recorder = AssetRecorder()
    assert recorder.record(assets, [], [report("queued", "2")]).recorded == 1
    assert recorder.record(assets, [], [report("delivered", "5")]).recorded == 1
    late = recorder.record(assets, [], [report("sent", "4")])  # arrived after the delivery report
    assert late.to_dict() == {"superseded": 1}
    assert recorder.record(assets, [], [report("delivered", "6")]).recorded == 1  # read: a new final word
    assert [e["status"] for e in events(assets, "status")] == ["queued", "delivered", "delivered"]


def test_an_asset_no_dag_uses_is_acknowledged_and_not_recorded(
    airflow_db: None, caplog: pytest.LogCaptureFixture
) -> None:
    outcome = AssetRecorder().record("nobody_listens", [reply()], [])
    assert outcome.to_dict() == {"unscheduled": 1}
    assert "sms://nobody_listens/inbound" in caplog.text
    assert events("nobody_listens", "inbound") == []


# --- the receipts table: the database decides, rows stay small, failures leave no trace ------------------


def receipts_rows() -> list[dict[str, Any]]:
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_provider_sms.state.webhook_receipts import RECEIPTS

    with create_session() as session:
        return [dict(row._mapping) for row in session.execute(select(RECEIPTS))]


def test_receipts_hold_no_number_and_no_text(assets: str) -> None:
    AssetRecorder().record(assets, [reply("r-private", "my private words")], [report("delivered")])
    mine = [r for r in receipts_rows() if r["conn_id"] == assets]
    assert len(mine) == 2 and all(r["asset_event_id"] for r in mine)
    dumped = repr(mine)
    assert "private" not in dumped and "+61400000001" not in dumped and "r-private" not in dumped


def test_a_failure_after_the_claim_leaves_nothing_so_the_retry_records(
    assets: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from airflow_provider_sms.webhooks.receiver import Transient

    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("INSERT ...", {}, Exception("server closed the connection unexpectedly"))

    with monkeypatch.context() as patch:
        patch.setattr(AssetRecorder, "_register", staticmethod(down))
        with pytest.raises(Transient, match="server closed"):
            AssetRecorder().record(assets, [reply("r-retry")], [])
    assert [r for r in receipts_rows() if r["conn_id"] == assets] == []
    assert AssetRecorder().record(assets, [reply("r-retry")], []).to_dict() == {"recorded": 1}
    assert len(events(assets, "inbound")) == 1


def test_text_that_is_not_unicode_is_refused_before_any_write(assets: str) -> None:
    from airflow_provider_sms.webhooks.receiver import Unrecordable

    with pytest.raises(Unrecordable, match="not valid Unicode"):
        AssetRecorder().record(assets, [reply("id-\ud800")], [])
    with pytest.raises(Unrecordable, match="NUL"):
        AssetRecorder().record(assets, [reply("r-nul", "a\x00b")], [])
    assert events(assets, "inbound") == []


def test_a_reply_without_a_provider_id_or_time_is_one_event_across_retries(assets: str, make_conn: Any) -> None:
    from airflow_provider_sms.hooks import get_sms_hook

    make_conn("clicky", "clickatell")
    hook = get_sms_hook("clicky")
    reply_item = {"from": "+61400000009", "to": "+61400000000", "content": "STOP"}
    first, again = (
        hook.webhook_message(
            reply_item, message_id=None, sender="+61400000009", receiver="+61400000000", text="STOP", received_at=None
        )
        for _ in range(2)
    )
    assert first.received_at_estimated and first.message_id == again.message_id
    recorder = AssetRecorder()
    assert recorder.record(assets, [first], []).to_dict() == {"recorded": 1}
    assert recorder.record(assets, [again], []).to_dict() == {"duplicates": 1}
    (event,) = events(assets, "inbound")
    assert event["received_at_estimated"] is True and event["message"]["received_at_estimated"] is True


def test_an_id_differing_in_case_reaches_the_same_asset_for_an_environment_connection(
    assets: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    shouted = assets.upper()
    assert AssetRecorder().record(shouted, [reply("r-case")], []).to_dict() == {"unscheduled": 1}  # not Airflow's
    monkeypatch.setenv(f"AIRFLOW_CONN_{assets.upper()}", '{"conn_type": "cloudware"}')
    assert AssetRecorder().record(shouted, [reply("r-case")], []).to_dict() == {"recorded": 1}
    assert AssetRecorder().record(assets, [reply("r-case")], []).to_dict() == {"duplicates": 1}
    (event,) = events(assets, "inbound")
    assert event["conn_id"] == assets


def test_old_receipts_are_pruned(assets: str) -> None:
    from datetime import timedelta

    from airflow.utils.session import create_session

    from airflow_provider_sms.state import webhook_receipts

    AssetRecorder().record(assets, [reply("r-old")], [])
    with create_session() as session:
        assert webhook_receipts.prune(session, older_than=timedelta(days=1)) == 0
        assert webhook_receipts.prune(session, older_than=timedelta(seconds=-1)) >= 1
    assert [r for r in receipts_rows() if r["conn_id"] == assets] == []
