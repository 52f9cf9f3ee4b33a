"""The senders' cost, encoding and validity options through the operators, asserted on the request."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_sms._compat import AirflowFailException
from airflow_provider_sms.core.errors import SmsValidationError
from airflow_provider_sms.operators.clickatell import ClickatellSendMessageOperator
from airflow_provider_sms.operators.send import SendSmsOperator
from tests.payloads import CELLCAST_GATEWAY, CLICKATELL_MESSAGES, cellcast_queued, clickatell_answer

PRICES = {"AU": 0.055, "GB": 0.04, "default": 0.08}


class FakeTI:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def run(op: Any) -> tuple[Any, FakeTI]:
    ti = FakeTI()
    return op.execute({"ti": ti}), ti


@pytest.fixture
def conns(make_conn: Any) -> None:
    make_conn("primary", "cellcast", prices=PRICES)
    make_conn("clicka", "clickatell", prices=PRICES)
    make_conn("backup", "cloudware")


def test_dry_run_reports_parts_per_recipient_cost_and_balance(conns: None, requests_mock: Any) -> None:
    op = SendSmsOperator(
        task_id="t", sms_conn_id="clicka", to=["+61400000001", "+447400123456"], message="Hi “there”", dry_run=True
    )
    plan, _ = run(op)
    assert requests_mock.call_count == 0
    (message,) = plan["messages"]
    assert (message["encoding"], message["segments_per_message"]) == ("GSM-7", 1)  # after smart encoding
    estimate = message["estimate"]
    assert [(r["to"], r["country"], r["parts"], r["cost"]) for r in estimate["recipients"]] == [
        ("+61400000001", "AU", 1, 0.055),
        ("+447400123456", "GB", 1, 0.04),
    ]
    assert plan["total_cost"] == 0.095
    assert (
        estimate["balance"] is None and "clickatell documents no account-balance endpoint" in estimate["balance_note"]
    )


def test_max_cost_holds_for_all_personalized_messages_together(conns: None, requests_mock: Any) -> None:
    rows = [{"to": "+61400000001", "message": "a" * 200}, {"to": "+61400000002", "message": "b" * 200}]
    op = SendSmsOperator(task_id="t", sms_conn_id="clicka", messages=rows, max_cost=0.2)  # 0.11 each, 0.22 in all
    with pytest.raises(AirflowFailException, match=r"this send of 2 messages is estimated at 0.22 .*max_cost is 0.2"):
        run(op)
    assert requests_mock.call_count == 0


def test_max_parts_refuses_the_send_before_any_request(conns: None, requests_mock: Any) -> None:
    requests_mock.post(CELLCAST_GATEWAY, json=cellcast_queued("400000001", "400000002"))
    op = SendSmsOperator(task_id="t", sms_conn_id="primary", to="0400000001,0400000002", message="x" * 161, max_parts=3)
    with pytest.raises(AirflowFailException, match=r"needs 4 SMS parts .* max_parts is 3"):
        run(op)
    assert requests_mock.call_count == 0
    run(SendSmsOperator(task_id="t", sms_conn_id="primary", to="0400000001,0400000002", message="x" * 161, max_parts=4))
    assert requests_mock.call_count == 1


def test_bad_caps_and_validity_fail_when_the_dag_is_parsed() -> None:
    with pytest.raises(SmsValidationError, match="max_parts must be a whole number"):
        SendSmsOperator(task_id="t", sms_conn_id="primary", to="1", message="hi", max_parts=0)
    with pytest.raises(SmsValidationError, match="max_cost must be a number"):
        SendSmsOperator(task_id="t", sms_conn_id="primary", to="1", message="hi", max_cost="lots")
    with pytest.raises(SmsValidationError, match="validity must be a timedelta"):
        SendSmsOperator(task_id="t", sms_conn_id="primary", to="1", message="hi", validity=30)


def test_smart_encoding_false_reaches_the_wire_unchanged(conns: None, requests_mock: Any) -> None:
    requests_mock.post(CELLCAST_GATEWAY, json=cellcast_queued("400000001"))
    run(SendSmsOperator(task_id="t", sms_conn_id="primary", to="0400000001", message="It’s", smart_encoding=False))
    assert requests_mock.request_history[0].json()["message"] == "It’s"


def test_validity_goes_to_clickatell_and_a_fallback_without_one_is_refused(conns: None, requests_mock: Any) -> None:
    requests_mock.post(CLICKATELL_MESSAGES, status_code=202, json=clickatell_answer("61400000001"))
    run(
        ClickatellSendMessageOperator(
            task_id="t", clickatell_conn_id="clicka", to="+61400000001", message="hi", validity=timedelta(days=1)
        )
    )
    assert requests_mock.request_history[0].json()["validityPeriod"] == 1440
    op = SendSmsOperator(
        task_id="t",
        sms_conn_id="clicka",
        to="+61400000001",
        message="hi",
        validity=timedelta(hours=1),
        fallback_conn_ids=["backup"],
    )
    with pytest.raises(AirflowFailException, match=r"fallback connection 'backup': Cloudware SMS has no validity"):
        run(op)
    assert requests_mock.call_count == 1


def test_validity_on_a_provider_without_one_fails_before_sending(conns: None, requests_mock: Any) -> None:
    op = SendSmsOperator(task_id="t", sms_conn_id="primary", to="0400000001", message="hi", validity=timedelta(hours=1))
    with pytest.raises(
        AirflowFailException, match=r"Cellcast SMS has no validity period .* Clickatell \(validityPeriod"
    ):
        run(op)
    assert requests_mock.call_count == 0


def test_the_notifier_takes_the_same_options(conns: None, requests_mock: Any) -> None:
    from airflow_provider_sms.notifications.sms import SmsNotifier

    requests_mock.post(CLICKATELL_MESSAGES, status_code=202, json=clickatell_answer("61400000001"))
    notifier = SmsNotifier(
        sms_conn_id="clicka", to="+61400000001", message="Load failed — retry…", validity=timedelta(minutes=30)
    )
    notifier.notify({"run_id": "r"})  # type: ignore[arg-type]
    assert requests_mock.request_history[0].json() == {
        "content": "Load failed - retry...",
        "to": ["61400000001"],
        "validityPeriod": 30,
    }
    with pytest.raises(SmsValidationError, match="max_parts is 1"):
        SmsNotifier(sms_conn_id="clicka", to="+61400000001", message="x" * 200, max_parts=1).notify({"run_id": "r"})  # type: ignore[arg-type]
    assert requests_mock.call_count == 1


def test_caps_hold_for_local_time_groups_together(conns: None, requests_mock: Any) -> None:
    rows = [
        {"to": "+61400000001", "message": "a" * 200, "tz": "Australia/Sydney"},
        {"to": "+61400000002", "message": "a" * 200, "tz": "Australia/Perth"},
    ]
    op = SendSmsOperator(task_id="t", sms_conn_id="clicka", messages=rows, local_time="09:00", max_parts=3)
    with pytest.raises(AirflowFailException, match=r"this send of 2 messages needs 4 SMS parts .* max_parts is 3"):
        run(op)
    assert requests_mock.call_count == 0


def test_a_personalized_row_outside_allowed_countries_is_rejected_and_the_others_sent(
    make_conn: Any, requests_mock: Any
) -> None:
    make_conn("guarded", "clickatell", allowed_countries="AU")
    requests_mock.post(CLICKATELL_MESSAGES, status_code=202, json=clickatell_answer("61400000001"))
    rows = [{"to": "+61400000001", "message": "Hi Ann"}, {"to": "+6421000000", "message": "Hi Bo"}]
    op = SendSmsOperator(task_id="t", sms_conn_id="guarded", messages=rows, fail_on_rejected=False)
    result, _ = run(op)
    assert [r.json()["to"] for r in requests_mock.request_history] == [["61400000001"]]
    assert [(r["to"], r["code"]) for r in result["rejected"]] == [("+6421000000", "country_not_allowed")]
