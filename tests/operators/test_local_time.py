"""Local send times and quiet hours in the operators and the notifier, with the clock frozen: the plan,
the requests on the wire, Cloudware's deferral in a real ``dag.test()`` run, and no second send when a
held send resumes on another worker."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pendulum
import pytest
import time_machine

from airflow_provider_sms.core.errors import SmsValidationError
from airflow_provider_sms.core.localtime import QuietHours
from airflow_provider_sms.operators.clickatell import ClickatellSendMessageOperator
from airflow_provider_sms.operators.cloudware import CloudwareQueueSmsOperator
from airflow_provider_sms.operators.send import SendSmsOperator
from tests.airflow_names import TaskDeferred
from tests.operators.test_send import FakeTI
from tests.payloads import CLICKATELL_MESSAGES, CLOUDWARE_QUEUE, CLOUDWARE_SEND
from tests.test_example_dags import load_dag, xcom_value

SYDNEY, LOS_ANGELES, LAGOS = "+61291234567", "+14155550123", "+2348012345678"
ROWS = [
    {"to": SYDNEY, "message": "Your parcel arrives tomorrow."},
    {"to": LOS_ANGELES, "message": "Your parcel arrives tomorrow."},
    {"to": LAGOS, "message": "Your parcel arrives tomorrow."},
]
# 20:30 UTC on 23 Nov 2026: 07:30 in Sydney (AEDT), 12:30 in Los Angeles (PST), 21:30 in Lagos (WAT)
FROZEN = datetime(2026, 11, 23, 20, 30, tzinfo=timezone.utc)


def clickatell_ok(requests_mock: Any) -> None:
    def answer(request: Any, context: Any) -> dict[str, Any]:
        context.status_code = 202
        return {"messages": [{"apiMessageId": f"id-{n}", "accepted": True, "to": n} for n in request.json()["to"]]}

    requests_mock.post(CLICKATELL_MESSAGES, json=answer)


@time_machine.travel(FROZEN, tick=False)
def test_local_time_on_clickatell_one_request_per_moment_with_its_time(make_conn: Any, requests_mock: Any) -> None:
    make_conn("clickatell_default", "clickatell")
    clickatell_ok(requests_mock)
    op = SendSmsOperator(task_id="t", sms_conn_id="clickatell_default", messages=ROWS, local_time="09:00")
    result = op.execute({"ti": FakeTI()})  # type: ignore[arg-type]
    sent = {tuple(r.json()["to"]): r.json()["scheduledDeliveryTime"] for r in requests_mock.request_history}
    assert sent == {
        ("61291234567",): "2026-11-23T22:00:00+0000",  # 09:00 AEDT today
        ("14155550123",): "2026-11-24T17:00:00+0000",  # 09:00 PST tomorrow
        ("2348012345678",): "2026-11-24T08:00:00+0000",  # 09:00 WAT tomorrow
    }
    by_number = {a["to"]: a for a in result["accepted"]}
    assert by_number[SYDNEY]["deliver_at"] == "2026-11-23T22:00:00+00:00"
    assert (by_number[LAGOS]["zone"], by_number[LAGOS]["zone_rule"]) == ("Africa/Lagos", "number")


@time_machine.travel(FROZEN, tick=False)
def test_quiet_hours_hold_only_those_it_is_night_for(make_conn: Any, requests_mock: Any) -> None:
    make_conn("clickatell_default", "clickatell")
    clickatell_ok(requests_mock)
    op = ClickatellSendMessageOperator(
        task_id="t", to=[SYDNEY, LOS_ANGELES, LAGOS], message="hi", quiet_hours=("21:00", "08:00")
    )
    result = op.execute({"ti": FakeTI()})  # type: ignore[arg-type]
    sent = {tuple(r.json()["to"]): r.json().get("scheduledDeliveryTime") for r in requests_mock.request_history}
    assert sent == {
        ("14155550123",): None,  # 12:30 in Los Angeles: now
        ("61291234567",): "2026-11-23T21:00:00+0000",  # 07:30 in Sydney: at 08:00
        ("2348012345678",): "2026-11-24T07:00:00+0000",  # 21:30 in Lagos: at 08:00 tomorrow
    }
    held = {a["to"]: a["held_for_quiet_hours"] for a in result["accepted"]}
    assert held == {LOS_ANGELES: False, SYDNEY: True, LAGOS: True}


@time_machine.travel(FROZEN, tick=False)
def test_the_dry_run_shows_groups_zones_and_times(make_conn: Any, requests_mock: Any) -> None:
    make_conn("cloudware_default", "cloudware")
    dag = load_dag("quiet_hours_reminders")
    op = dag.get_task("remind")
    op.is_dry_run = True
    plan = op.execute({"ti": FakeTI()})
    assert requests_mock.call_count == 0
    assert [(s["deliver_at"], s["to"]) for s in plan["slots"]] == [
        (None, ["+14155550124"]),
        ("2026-11-23T21:00:00+00:00", ["+61400000061"]),  # its row names Australia/Sydney
        ("2026-11-24T07:00:00+00:00", ["+2348012345679"]),
    ]
    assert plan["timing"]["+61400000061"]["zone_rule"] == "tz"


def test_cloudware_defers_until_the_next_group_in_a_real_run(airflow_db: None, make_conn: Any, sandbox: Any) -> None:
    from datetime import timedelta

    make_conn("cloudware_default", "cloudware", host=sandbox.url)
    # quiet hours that end 25 s from now (dag.test takes a few to start) for a recipient in UTC; Tokyo,
    # nine hours on, is not in them
    now = datetime.now(timezone.utc)
    quiet = ((now - timedelta(hours=1)).strftime("%H:%M:%S"), (now + timedelta(seconds=25)).strftime("%H:%M:%S"))
    dag = load_dag("quiet_hours_reminders")
    remind = dag.get_task("remind")
    remind.messages = [
        {"to": SYDNEY, "message": "Your parcel arrives tomorrow.", "tz": "UTC"},
        {"to": LOS_ANGELES, "message": "Your parcel arrives tomorrow.", "tz": "Asia/Tokyo"},
    ]
    remind.quiet_hours = QuietHours.parse(quiet)
    run = dag.test()  # the DateTimeTrigger runs inline, as the triggerer would run it
    sent = [(m["phone"], m["ts"]) for m in sandbox.store.all() if m["direction"] == "out"]
    assert run.state == "success"
    assert [phone for phone, _ in sent] == [LOS_ANGELES, SYDNEY]
    end = (now + timedelta(seconds=25)).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%S")
    assert sent[0][1] < end <= sent[1][1]  # the held text went when the quiet hours ended
    result = xcom_value(run, "remind")
    assert sorted(a["to"] for a in result["accepted"]) == sorted([SYDNEY, LOS_ANGELES])
    assert {a["to"]: a["zone"] for a in result["accepted"]} == {SYDNEY: "UTC", LOS_ANGELES: "Asia/Tokyo"}


def test_a_held_send_resumed_on_another_worker_sends_only_what_is_left(make_conn: Any, sandbox: Any) -> None:
    make_conn("cloudware_default", "cloudware", host=sandbox.url)

    def operator() -> CloudwareQueueSmsOperator:
        return CloudwareQueueSmsOperator(
            task_id="t", to=[SYDNEY, LOS_ANGELES, LAGOS], message="hi", quiet_hours=("21:00", "08:00")
        )

    with time_machine.travel(FROZEN, tick=False), pytest.raises(TaskDeferred) as first:
        operator().execute({"ti": FakeTI()})  # type: ignore[arg-type]
    assert first.value.trigger.moment == pendulum.datetime(2026, 11, 23, 21)
    assert [m["phone"] for m in sandbox.store.all()] == [LOS_ANGELES]
    # the worker is gone; another one picks the task up from the deferral's kwargs when the trigger fires
    resumed_at = datetime(2026, 11, 23, 21, 0, 1, tzinfo=timezone.utc)
    with time_machine.travel(resumed_at, tick=False), pytest.raises(TaskDeferred) as second:
        operator().resume_timed({"ti": FakeTI()}, None, **first.value.kwargs)  # type: ignore[arg-type]
    assert [m["phone"] for m in sandbox.store.all()] == [LOS_ANGELES, SYDNEY]
    with time_machine.travel(datetime(2026, 11, 24, 7, 0, 1, tzinfo=timezone.utc), tick=False):
        result = operator().resume_timed({"ti": FakeTI()}, None, **second.value.kwargs)  # type: ignore[arg-type]
    assert [m["phone"] for m in sandbox.store.all()] == [LOS_ANGELES, SYDNEY, LAGOS]  # each once
    assert [a["to"] for a in result["accepted"]] == [LOS_ANGELES, SYDNEY, LAGOS]
    assert sandbox.faults.stats()["requests"].get("POST /v1/sms/queue") == 3


def test_a_later_group_failing_is_not_retried_after_earlier_ones_went(make_conn: Any, requests_mock: Any) -> None:
    from airflow_provider_sms._compat import AirflowFailException

    make_conn("cloudware_default", "cloudware")
    requests_mock.post(CLOUDWARE_QUEUE, json={"status": "success", "data": {"id": "1"}})
    op = CloudwareQueueSmsOperator(task_id="t", to=[SYDNEY, LOS_ANGELES], message="hi", quiet_hours="21:00-08:00")
    with time_machine.travel(FROZEN, tick=False), pytest.raises(TaskDeferred) as held:
        op.execute({"ti": FakeTI()})  # type: ignore[arg-type]
    requests_mock.post(CLOUDWARE_QUEUE, status_code=503, json={"status": "error"})
    resumed_at = datetime(2026, 11, 23, 21, 0, 1, tzinfo=timezone.utc)
    with time_machine.travel(resumed_at, tick=False), pytest.raises(AirflowFailException, match="not retried"):
        op.resume_timed({"ti": FakeTI()}, None, **held.value.kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"local_time": "9am"}, "24-hour time"),
        ({"quiet_hours": ("21:00", "21:00")}, "empty or the whole day"),
        ({"local_time": "22:00", "quiet_hours": ("21:00", "08:00")}, "inside the quiet hours"),
        ({"local_time": "09:00", "send_at": "2030-01-01T09:00:00+00:00"}, "send_at fixes one delivery time"),
        ({"local_time": "09:00", "default_tz": "Sydney"}, "not a time zone"),
    ],
)
def test_bad_settings_fail_when_the_dag_is_parsed(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(SmsValidationError, match=message):
        SendSmsOperator(task_id="t", sms_conn_id="c", to=[SYDNEY], message="hi", **kwargs)


@time_machine.travel(FROZEN, tick=False)
def test_an_unknown_row_tz_fails_before_anything_is_sent(make_conn: Any, requests_mock: Any) -> None:
    from airflow_provider_sms._compat import AirflowFailException

    make_conn("cloudware_default", "cloudware")
    rows = [{"to": LOS_ANGELES, "message": "hi"}, {"to": SYDNEY, "message": "hi", "tz": "Sydney/Opera"}]
    op = SendSmsOperator(task_id="t", sms_conn_id="cloudware_default", messages=rows, local_time="09:00")
    with pytest.raises(AirflowFailException, match="'Sydney/Opera' is not a time zone"):
        op.execute({"ti": FakeTI()})  # type: ignore[arg-type]
    assert requests_mock.call_count == 0


@time_machine.travel(FROZEN, tick=False)
def test_the_notifier_holds_with_a_scheduling_provider_and_skips_without(
    make_conn: Any, requests_mock: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow_provider_sms.notifications.sms import SmsNotifier

    make_conn("clickatell_default", "clickatell")
    make_conn("cloudware_default", "cloudware")
    clickatell_ok(requests_mock)
    requests_mock.post(CLOUDWARE_SEND, json={"status": "success", "data": {"id": "1"}})
    quiet = ("21:00", "08:00")
    SmsNotifier(sms_conn_id="clickatell_default", to=[LAGOS, LOS_ANGELES], message="x", quiet_hours=quiet).notify({})
    sent = {tuple(r.json()["to"]): r.json().get("scheduledDeliveryTime") for r in requests_mock.request_history}
    assert sent == {("14155550123",): None, ("2348012345678",): "2026-11-24T07:00:00+0000"}
    SmsNotifier(sms_conn_id="cloudware_default", to=[LAGOS, LOS_ANGELES], message="x", quiet_hours=quiet).notify({})
    cloudware = [r.json()["to"] for r in requests_mock.request_history if r.url == CLOUDWARE_SEND]
    assert cloudware == ["14155550123"]
    logged = caplog.text + capsys.readouterr().out
    assert "not texting 1 recipient(s) in their quiet hours" in logged
