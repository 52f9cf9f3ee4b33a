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
