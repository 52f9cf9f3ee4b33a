"""SendSmsOperator: XCom result, dry run, failover, personalized sends, and which failures retry."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_sms._compat import AirflowFailException
from airflow_provider_sms.core.errors import SmsError, SmsValidationError
from airflow_provider_sms.operators.send import SendSmsOperator
from tests.payloads import CELLCAST_GATEWAY, CLOUDWARE_SEND, cellcast_queued, in_days

CELLCAST = CELLCAST_GATEWAY
CLOUDWARE = CLOUDWARE_SEND
OK_CLOUDWARE = {"status": "success", "data": {"id": "cw-1"}}


class FakeTI:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


queued = cellcast_queued
SOON = in_days(30, second=0, microsecond=0)


@pytest.fixture
def conns(make_conn: Any) -> None:
    make_conn("primary", "cellcast")
    make_conn("backup", "cloudware")


def run(op: SendSmsOperator) -> tuple[Any, FakeTI]:
    ti = FakeTI()
    return op.execute({"ti": ti}), ti  # type: ignore[arg-type]


def test_sends_and_returns_the_result(conns: None, requests_mock: Any) -> None:
    requests_mock.post(CELLCAST, json=queued("400000001", "400000002"))
    result, ti = run(SendSmsOperator(task_id="t", sms_conn_id="primary", to="0400000001,0400000002", message="hi"))
    assert result["provider"] == "cellcast"
    assert [a["to"] for a in result["accepted"]] == ["+61400000001", "+61400000002"]
    assert requests_mock.request_history[0].json()["contacts"] == ["+61400000001", "+61400000002"]
    assert ti.pushed == {}


def test_rendered_list_literal_is_read_as_a_list(conns: None, requests_mock: Any) -> None:
    requests_mock.post(CELLCAST, json=queued("400000001", "400000002"))
    run(SendSmsOperator(task_id="t", sms_conn_id="primary", to="['0400000001', '0400000002']", message="hi"))
    assert requests_mock.request_history[0].json()["contacts"] == ["+61400000001", "+61400000002"]


def test_dry_run_sends_nothing_and_reports_the_plan(conns: None, requests_mock: Any) -> None:
    op = SendSmsOperator(
        task_id="t", sms_conn_id="primary", to=["0400000001", "bad", "0400000001"], message="€" * 81, dry_run=True
    )
    plan, _ = run(op)
    assert requests_mock.call_count == 0
    assert plan["dry_run"] is True
    (message,) = plan["messages"]
    assert message["recipients"] == ["+61400000001"]
    assert message["rejected"][0]["to"] == "bad"
    assert (message["encoding"], message["segments_per_message"]) == ("GSM-7", 2)
    assert plan["total_segments"] == 2
    assert plan["requests"] == message["requests"] == 1


def test_dry_run_applies_the_providers_destination_rule(conns: None, requests_mock: Any) -> None:
    op = SendSmsOperator(
        task_id="t", sms_conn_id="primary", to=["0400000001", "+2348012345678"], message="hi", dry_run=True
    )
    plan, _ = run(op)
    (message,) = plan["messages"]
    assert message["recipients"] == ["+61400000001"]
    assert [(r["to"], r["code"]) for r in message["rejected"]] == [("+2348012345678", "unsupported_destination")]
    assert requests_mock.call_count == 0


def test_send_at_reaches_the_provider(conns: None, requests_mock: Any) -> None:
    requests_mock.post(CELLCAST, json=queued("400000001"))
    op = SendSmsOperator(task_id="t", sms_conn_id="primary", to="0400000001", message="hi", send_at=SOON.isoformat())
    run(op)
    assert requests_mock.request_history[0].json()["scheduleAt"] == SOON.strftime("%Y-%m-%dT%H:%M:00.000Z")


def test_send_at_with_a_fallback_that_cannot_schedule_fails_before_sending(conns: None, requests_mock: Any) -> None:
    op = SendSmsOperator(
        task_id="t",
        sms_conn_id="primary",
        fallback_conn_ids=["backup"],
        to="0400000001",
        message="hi",
        send_at=SOON.isoformat(),
    )
    with pytest.raises(AirflowFailException, match="'backup' cannot schedule"):
        run(op)
    assert requests_mock.call_count == 0


def test_one_bad_group_stops_a_personalized_send_before_anything_goes_out(conns: None, requests_mock: Any) -> None:
    requests_mock.post(CELLCAST, json=queued("400000001"))
    messages = [{"to": "0400000001", "message": "fine"}, {"to": "0400000002", "message": "x" * 2000}]
    with pytest.raises(AirflowFailException, match="SMS parts"):
        run(SendSmsOperator(task_id="t", sms_conn_id="primary", messages=messages))
    assert requests_mock.call_count == 0


def test_partial_rejection_pushes_the_result_then_fails_without_retry(conns: None, requests_mock: Any) -> None:
    requests_mock.post(CELLCAST, json=queued("400000001"))
    op = SendSmsOperator(task_id="t", sms_conn_id="primary", to=["0400000001", "junk"], message="hi")
    ti = FakeTI()
    with pytest.raises(AirflowFailException, match=r"1 recipient\(s\) rejected"):
        op.execute({"ti": ti})  # type: ignore[arg-type]
    pushed = ti.pushed["return_value"]
    assert [a["to"] for a in pushed["accepted"]] == ["+61400000001"]
    assert pushed["rejected"][0]["to"] == "junk"


def test_fail_on_rejected_false_succeeds_with_the_result(conns: None, requests_mock: Any) -> None:
    requests_mock.post(CELLCAST, json=queued("400000001"))
    op = SendSmsOperator(
        task_id="t", sms_conn_id="primary", to=["0400000001", "junk"], message="hi", fail_on_rejected=False
    )
    result, _ = run(op)
    assert len(result["accepted"]) == 1
    assert len(result["rejected"]) == 1


@pytest.mark.parametrize(
    ("status", "body"),
    [(401, {"message": "Token expired"}), (422, {"status": False, "message": "Your balance is too low"})],
)
def test_auth_and_credit_fail_without_retry(conns: None, requests_mock: Any, status: int, body: dict) -> None:
    requests_mock.post(CELLCAST, status_code=status, json=body)
    with pytest.raises(AirflowFailException):
        run(SendSmsOperator(task_id="t", sms_conn_id="primary", to="0400000001", message="hi"))


def test_outage_with_nobody_accepted_stays_retryable(make_conn: Any, requests_mock: Any) -> None:
    make_conn("cw", "cloudware")
    requests_mock.post(CLOUDWARE, status_code=503, json={"message": "down"})
    with pytest.raises(SmsError, match="may be retried safely") as info:
        run(SendSmsOperator(task_id="t", sms_conn_id="cw", to="+2348012345678", message="hi"))
    assert not isinstance(info.value, AirflowFailException)


def test_outage_after_some_were_accepted_is_not_retried(make_conn: Any, requests_mock: Any) -> None:
    make_conn("cw", "cloudware")
    requests_mock.post(CLOUDWARE, [{"json": OK_CLOUDWARE}, {"status_code": 503, "json": {"message": "down"}}])
    op = SendSmsOperator(
        task_id="t", sms_conn_id="cw", to=["+2348012345678", "+2348012345679"], message="hi", max_workers=1
    )
    with pytest.raises(AirflowFailException, match="nobody is texted twice"):
        run(op)


def test_delivery_unknown_is_never_retried_or_failed_over(conns: None, requests_mock: Any) -> None:
    requests_mock.post(CELLCAST, status_code=500, json={"message": "oops"})
    requests_mock.post(CLOUDWARE, json=OK_CLOUDWARE)
    op = SendSmsOperator(
        task_id="t", sms_conn_id="primary", fallback_conn_ids=["backup"], to="0400000001", message="hi"
    )
    with pytest.raises(AirflowFailException):
        run(op)
    assert [r.url for r in requests_mock.request_history] == [CELLCAST]


def test_failover_sends_only_what_the_primary_did_not_process(conns: None, requests_mock: Any) -> None:
    requests_mock.post(CELLCAST, status_code=401, json={"code": 401, "message": "Token expired"})
    requests_mock.post(CLOUDWARE, json=OK_CLOUDWARE)
    op = SendSmsOperator(
        task_id="t",
        sms_conn_id="primary",
        fallback_conn_ids=["backup"],
        to=["0400000001", "0400000002", "nope"],
        message="hi",
        fail_on_rejected=False,
    )
    result, _ = run(op)
    assert sorted(r.json()["to"] for r in requests_mock.request_history if r.url == CLOUDWARE) == [
        "61400000001",
        "61400000002",
    ]
    assert {(a["to"], a["provider"]) for a in result["accepted"]} == {
        ("+61400000001", "cloudware"),
        ("+61400000002", "cloudware"),
    }
    assert result["rejected"] == [{"to": "nope", "code": "invalid_number", "reason": result["rejected"][0]["reason"]}]


def test_failover_takes_numbers_the_primary_does_not_serve(conns: None, requests_mock: Any) -> None:
    requests_mock.post(CELLCAST, json=queued("400000001"))
    requests_mock.post(CLOUDWARE, json=OK_CLOUDWARE)
    op = SendSmsOperator(
        task_id="t",
        sms_conn_id="primary",
        fallback_conn_ids=["backup"],
        to=["0400000001", "+2348012345678"],
        message="hi",
    )
    result, _ = run(op)
    assert [r.json()["to"] for r in requests_mock.request_history if r.url == CLOUDWARE] == ["2348012345678"]
    assert {(a["to"], a.get("provider")) for a in result["accepted"]} == {
        ("+61400000001", None),
        ("+2348012345678", "cloudware"),
    }
    assert result["rejected"] == []


def test_personalized_messages_are_grouped_by_text(conns: None, requests_mock: Any) -> None:
    requests_mock.post(CELLCAST, json={"status": True, "data": {}})
    messages = [
        {"to": "0400000001", "message": "Hi Ann, your table is at 7"},
        ("0400000002", "Reminder: tomorrow 9am"),
        {"to": "0400000003", "message": "Reminder: tomorrow 9am"},
    ]
    result, _ = run(SendSmsOperator(task_id="t", sms_conn_id="primary", messages=messages))
    sent = {r.json()["message"]: r.json()["contacts"] for r in requests_mock.request_history}
    assert sent == {
        "Hi Ann, your table is at 7": ["+61400000001"],
        "Reminder: tomorrow 9am": ["+61400000002", "+61400000003"],
    }
    assert len(result["accepted"]) == 3


def test_argument_errors_are_clear() -> None:
    with pytest.raises(SmsValidationError, match="give `to` and `message`"):
        SendSmsOperator(task_id="t", sms_conn_id="x", to="0400000001")
    with pytest.raises(SmsValidationError, match="not both"):
        SendSmsOperator(task_id="t", sms_conn_id="x", to="1", message="m", messages=[])


def test_validation_error_fails_without_retry(conns: None, requests_mock: Any) -> None:
    with pytest.raises(AirflowFailException, match="SmsValidationError"):
        run(SendSmsOperator(task_id="t", sms_conn_id="primary", to="0400000001", message="hi", sender="Bad_Sender!"))
    assert requests_mock.call_count == 0


def test_dag_files_importing_the_operators_do_not_load_heavy_modules() -> None:
    """Compared with what Airflow's own base classes load, our DAG-facing modules add nothing heavy."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import airflow_provider_sms._compat\n"
        "before = set(sys.modules)\n"
        "import airflow_provider_sms.operators.send, airflow_provider_sms.operators.clickatell\n"
        "import airflow_provider_sms.sensors.inbound, airflow_provider_sms.notifications.sms\n"
        "added = set(sys.modules) - before\n"
        "heavy = ('phonenumbers', 'requests', 'urllib3', 'starlette', 'uvicorn', 'pendulum',\n"
        "         'airflow_provider_sms.hooks.', 'airflow_provider_sms.sandbox', 'airflow_provider_sms.core.http')\n"
        "print(sorted(m for m in added if m.startswith(heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_message_can_be_a_txt_template_file(tmp_path: Any, conns: None, requests_mock: Any) -> None:
    from tests.airflow_names import DAG

    (tmp_path / "alert.txt").write_text("Load for {{ ds }} failed: {{ params.table }}\n")
    requests_mock.post(CELLCAST, json=queued("400000001"))
    with DAG("txt_template", schedule=None, template_searchpath=str(tmp_path), params={"table": "orders"}) as dag:
        op = SendSmsOperator(task_id="t", sms_conn_id="primary", to="0400000001", message="alert.txt")
    op.resolve_template_files()
    op.render_template_fields({"ds": "2030-01-31", "params": dag.params, "dag": dag})
    run(op)
    assert requests_mock.request_history[0].json()["message"] == "Load for 2030-01-31 failed: orders"
