"""Cellcast, Clickatell and Cloudware operators pass their arguments through to the hooks' requests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sms._compat import AirflowFailException
from airflow_provider_sms.operators.cellcast import CellcastSendChatOperator, CellcastSendMmsOperator
from airflow_provider_sms.operators.clickatell import ClickatellSendMessageOperator
from airflow_provider_sms.operators.cloudware import CloudwareQueueSmsOperator
from tests.operators.test_send import FakeTI
from tests.payloads import PNG
from tests.wire import multipart_fields


def execute(op: Any) -> Any:
    return op.execute({"ti": FakeTI()})


def test_chat_operator(make_conn: Any, requests_mock: Any) -> None:
    make_conn("cellcast_default", "cellcast")
    requests_mock.post(
        "https://api.cellcast.com/api/v1/chat",
        json={"status": True, "data": [{"number": "61400000001", "message": "x"}]},
    )
    result = execute(CellcastSendChatOperator(task_id="t", to=["0400000001"], message="x", sms_template_id="S"))
    assert requests_mock.request_history[0].json()["smsTemplateId"] == "S"
    assert result["accepted"] == [{"to": "+61400000001", "message_id": None, "conn_id": "cellcast_default"}]


def test_mms_operator_uploads_media(make_conn: Any, requests_mock: Any, tmp_path: Path) -> None:
    make_conn("cellcast_default", "cellcast")
    requests_mock.post(
        "https://api.cellcast.com/api/v1/gatewaymms",
        json={"status": True, "data": {"queueResponse": [{"Contact": "400000001", "MessageId": "m"}]}},
    )
    media = tmp_path / "a.png"
    media.write_bytes(PNG)
    result = execute(CellcastSendMmsOperator(task_id="t", to="0400000001", message="x", media=str(media)))
    request = requests_mock.request_history[0]
    assert multipart_fields(request.headers["Content-Type"], request.body)["media"] == ("a.png", PNG, "image/png")
    assert result["accepted"] == [{"to": "+61400000001", "message_id": "m", "conn_id": "cellcast_default"}]


def test_clickatell_operator_send_at_timedelta(make_conn: Any, requests_mock: Any) -> None:
    make_conn("clickatell_default", "clickatell")
    requests_mock.post(
        "https://platform.clickatell.com/messages",
        status_code=202,
        json={"messages": [{"apiMessageId": "a1", "accepted": True, "to": "61400000001"}]},
    )
    before = datetime.now(timezone.utc)
    execute(ClickatellSendMessageOperator(task_id="t", to="+61400000001", message="x", send_at=timedelta(hours=2)))
    sent = requests_mock.request_history[0].json()["scheduledDeliveryTime"]
    moment = datetime.strptime(sent, "%Y-%m-%dT%H:%M:%S%z")
    assert timedelta(hours=2) - timedelta(seconds=5) <= moment - before <= timedelta(hours=2, seconds=5)


@pytest.mark.parametrize("send_at", ["2031-01-01T09:00:00", datetime(2001, 1, 1, tzinfo=timezone.utc)])
def test_clickatell_operator_refuses_naive_or_past(make_conn: Any, requests_mock: Any, send_at: Any) -> None:
    make_conn("clickatell_default", "clickatell")
    with pytest.raises(AirflowFailException):
        execute(ClickatellSendMessageOperator(task_id="t", to="+61400000001", message="x", send_at=send_at))
    assert requests_mock.call_count == 0


def test_cloudware_queue_operator(make_conn: Any, requests_mock: Any) -> None:
    make_conn("cloudware_default", "cloudware")
    requests_mock.post("https://api.cloudware.chat/v1/sms/queue", json={"status": "success", "data": {"id": "q1"}})
    result = execute(CloudwareQueueSmsOperator(task_id="t", to="+2348012345678", message="x"))
    assert requests_mock.request_history[0].json() == {"to": "2348012345678", "message": "x"}
    assert result["accepted"] == [{"to": "+2348012345678", "message_id": "q1", "conn_id": "cloudware_default"}]


@pytest.mark.parametrize(
    ("operator", "kwargs"),
    [
        (CellcastSendChatOperator, {}),
        (CellcastSendMmsOperator, {"gif_url": "https://example.com/a.gif"}),
        (ClickatellSendMessageOperator, {}),
        (CloudwareQueueSmsOperator, {}),
    ],
)
def test_every_operator_reads_its_message_from_a_txt_template(tmp_path: Path, operator: Any, kwargs: dict) -> None:
    from tests.airflow_names import DAG

    (tmp_path / "text.txt").write_text("Hello {{ params.name }}")
    with DAG("txt", schedule=None, template_searchpath=str(tmp_path), params={"name": "Ann"}) as dag:
        op = operator(task_id="t", to="+61400000001", message="text.txt", **kwargs)
    op.resolve_template_files()
    op.render_template_fields({"params": dag.params, "dag": dag})
    assert op.message == "Hello Ann"


def test_send_timeout_reaches_the_hook(make_conn: Any, requests_mock: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_sms.core.results import SendResult
    from airflow_provider_sms.hooks.cloudware import CloudwareHook

    seen = []

    def deliver(self: CloudwareHook, *args: Any, **kwargs: Any) -> SendResult:
        seen.append(self.send_timeout)
        return SendResult("cloudware", accepted=[{"to": "+2348012345678", "message_id": "1"}])

    monkeypatch.setattr(CloudwareHook, "deliver", deliver)
    make_conn("cloudware_default", "cloudware")
    execute(CloudwareQueueSmsOperator(task_id="t", to="+2348012345678", message="x", send_timeout=7))
    assert seen == [7]
