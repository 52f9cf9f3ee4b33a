"""``SmsDeliverySensor`` against the sandbox: real ``dag.test()`` runs in poke, reschedule and deferrable
modes, the outcome buckets, ``fail_on_undelivered``, and the errors a user can make."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_sms._compat import AirflowFailException
from airflow_provider_sms.sensors.delivery import SmsDeliverySensor
from tests.test_example_dags import load_dag, xcom_value

DELIVERED, FAILING, OPTING_OUT = "+61400000031", "+61400000911", "+61400000913"


@pytest.fixture
def quick_sandbox(sandbox: Any) -> Any:
    sandbox.store.settings.delivery.update({"sent_after": 0.2, "final_after": 0.6})
    return sandbox


def delivery_dag(mode: str, deferrable: bool, *, fail_on_undelivered: bool = False) -> Any:
    dag = load_dag("delivery_report")
    sensor = dag.get_task("wait_for_delivery")
    sensor.mode, sensor.deferrable, sensor.poke_interval = mode, deferrable, 1
    sensor.fail_on_undelivered = fail_on_undelivered
    return dag


@pytest.mark.parametrize(("mode", "deferrable"), [("poke", False), ("reschedule", False), ("poke", True)])
def test_each_mode_waits_until_every_message_settles(
    airflow_db: None, make_conn: Any, quick_sandbox: Any, mode: str, deferrable: bool
) -> None:
    make_conn("cellcast_default", "cellcast", host=quick_sandbox.url)
    run = delivery_dag(mode, deferrable).test()
    assert run.state == "success"
    outcome = xcom_value(run, "wait_for_delivery")
    assert sorted(outcome["delivered"]) == ["+61400000041", "+61400000042"]
    assert outcome["undelivered"] == [FAILING]
    assert outcome["pending"] == [] and outcome["untracked"] == []
    statuses = {r["to"]: r["status"] for r in outcome["reports"]}
    assert statuses == {"+61400000041": "delivered", "+61400000042": "delivered", FAILING: "failed"}
    assert xcom_value(run, "not_reached") == [FAILING]
    reports = quick_sandbox.faults.stats()["requests"]
    asked = sum(n for call, n in reports.items() if call.startswith("GET /api/v2/report/message/"))
    assert asked >= 3  # one report call per message and poll


def test_fail_on_undelivered_fails_the_task_naming_masked_numbers(
    airflow_db: None, make_conn: Any, quick_sandbox: Any
) -> None:
    make_conn("cellcast_default", "cellcast", host=quick_sandbox.url)
    run = delivery_dag("poke", False, fail_on_undelivered=True).test()
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["wait_for_delivery"] == "failed"
    assert states["not_reached"] == "upstream_failed"


def run_sensor(sensor: SmsDeliverySensor) -> Any:
    """Poke until done (the sandbox settles in well under a second here)."""
    import time

    sensor._prepare()
    for _ in range(50):
        answer = sensor.poke({})  # type: ignore[arg-type]
        if answer:
            return answer.xcom_value  # type: ignore[union-attr]
        time.sleep(0.1)
    raise AssertionError("the sensor never finished")


def test_an_opt_out_is_reported_as_unsubscribed(make_conn: Any, quick_sandbox: Any) -> None:
    from airflow_provider_sms.hooks import get_sms_hook

    make_conn("cellcast_default", "cellcast", host=quick_sandbox.url)
    result = get_sms_hook("cellcast_default").send_sms(to=[DELIVERED, OPTING_OUT], message="hi")
    sensor = SmsDeliverySensor(
        task_id="d", sms_conn_id="cellcast_default", result=result.to_dict(), fail_on_undelivered=False
    )
    outcome = run_sensor(sensor)
    assert outcome["delivered"] == [DELIVERED] and outcome["undelivered"] == [OPTING_OUT]
    assert {r["to"]: r["status"] for r in outcome["reports"]}[OPTING_OUT] == "unsubscribed"


def test_cloudware_reports_stop_at_sent_and_end_the_wait(make_conn: Any, quick_sandbox: Any) -> None:
    from airflow_provider_sms.hooks import get_sms_hook

    make_conn("cloudware_default", "cloudware", host=quick_sandbox.url, country_code="61")
    result = get_sms_hook("cloudware_default").send_sms(to=[DELIVERED, "+61400000032"], message="hi")
    sensor = SmsDeliverySensor(task_id="d", sms_conn_id="cloudware_default", result=result.to_dict())
    outcome = run_sensor(sensor)
    assert sorted(outcome["sent"]) == [DELIVERED, "+61400000032"]
    assert outcome["delivered"] == [] and outcome["pending"] == []


def test_recipients_without_a_message_id_are_listed_not_waited_for(make_conn: Any, quick_sandbox: Any) -> None:
    make_conn("cellcast_default", "cellcast", host=quick_sandbox.url)
    result = {"provider": "cellcast", "accepted": [{"to": DELIVERED, "message_id": None}], "rejected": []}
    sensor = SmsDeliverySensor(task_id="d", sms_conn_id="cellcast_default", result=result)
    assert sensor.execute({}) == {  # type: ignore[arg-type]
        "provider": "cellcast",
        "reports": [],
        "delivered": [],
        "undelivered": [],
        "sent": [],
        "pending": [],
        "untracked": [DELIVERED],
    }


def test_clickatell_points_at_the_status_webhook(make_conn: Any, quick_sandbox: Any) -> None:
    make_conn("clickatell_default", "clickatell", host=quick_sandbox.url)
    result = {"provider": "clickatell", "accepted": [{"to": DELIVERED, "message_id": "abc"}], "rejected": []}
    sensor = SmsDeliverySensor(task_id="d", sms_conn_id="clickatell_default", result=result)
    sensor._prepare()
    with pytest.raises(AirflowFailException, match=r"/sms/webhooks/clickatell_default/status"):
        sensor.poke({})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ("not json", "result is text"),
        ({"accepted": []}, "what an SMS send returned"),
        ([{"provider": "cellcast", "accepted": []}, {"provider": "cloudware", "accepted": []}], "cannot be followed"),
    ],
)
def test_a_result_that_is_not_a_send_fails_clearly(make_conn: Any, result: Any, message: str) -> None:
    make_conn("cellcast_default", "cellcast")
    sensor = SmsDeliverySensor(task_id="d", sms_conn_id="cellcast_default", result=result)
    with pytest.raises(AirflowFailException, match=message):
        sensor.execute({})  # type: ignore[arg-type]


def test_a_send_through_another_provider_is_refused(make_conn: Any) -> None:
    make_conn("cellcast_default", "cellcast")
    result = {"provider": "cloudware", "accepted": [{"to": DELIVERED, "message_id": "1"}]}
    sensor = SmsDeliverySensor(task_id="d", sms_conn_id="cellcast_default", result=result)
    with pytest.raises(AirflowFailException, match="went through cloudware"):
        sensor.execute({})  # type: ignore[arg-type]


def test_execute_complete_handles_each_event(make_conn: Any) -> None:
    from airflow_provider_sms._compat import AirflowSensorTimeout

    make_conn("cellcast_default", "cellcast")
    result = {"provider": "cellcast", "accepted": [{"to": DELIVERED, "message_id": "m1"}]}
    sensor = SmsDeliverySensor(task_id="d", sms_conn_id="cellcast_default", result=result)
    report = {"provider": "cellcast", "message_id": "m1", "to": DELIVERED, "status": "delivered"}
    assert sensor.execute_complete({}, {"status": "done", "reports": [report]})["delivered"] == [DELIVERED]  # type: ignore[arg-type]
    with pytest.raises(AirflowSensorTimeout):
        sensor.execute_complete({}, {"status": "timeout", "timeout_at": "x", "reports": []})  # type: ignore[arg-type]
    with pytest.raises(AirflowFailException, match="401"):
        sensor.execute_complete({}, {"status": "error", "error": "401 bad token"})  # type: ignore[arg-type]


NIGERIA = "+2348012345678"  # Cellcast sends SMS to Australia only: this one fails over to Cloudware


def failed_over_send(make_conn: Any, sandbox: Any) -> dict[str, Any]:
    """A send through Cellcast with Cloudware as fallback: one recipient accepted by each."""
    from airflow_provider_sms.core.delivery import send_with_failover
    from airflow_provider_sms.hooks import get_sms_hook

    make_conn("cellcast_default", "cellcast", host=sandbox.url)
    make_conn("cloudware_backup", "cloudware", host=sandbox.url)
    factories = [lambda: get_sms_hook("cellcast_default"), lambda: get_sms_hook("cloudware_backup")]
    result = send_with_failover(factories, [DELIVERED, NIGERIA], "hi").to_dict()
    by_conn = {a["to"]: a["conn_id"] for a in result["accepted"]}
    assert by_conn == {DELIVERED: "cellcast_default", NIGERIA: "cloudware_backup"}
    return result


def test_after_failover_each_report_is_asked_of_the_connection_that_accepted_it(
    make_conn: Any, quick_sandbox: Any
) -> None:
    result = failed_over_send(make_conn, quick_sandbox)
    quick_sandbox.faults.reset_stats()
    sensor = SmsDeliverySensor(task_id="d", sms_conn_id="cellcast_default", result=result)
    outcome = run_sensor(sensor)
    assert outcome["delivered"] == [DELIVERED] and outcome["sent"] == [NIGERIA]  # Cloudware reports stop at sent
    assert outcome["pending"] == [] and outcome["provider"] == "cellcast"
    asked = quick_sandbox.faults.stats()["requests"]
    cloudware_id = next(a["message_id"] for a in result["accepted"] if a["to"] == NIGERIA)
    assert f"GET /api/v2/report/message/{cloudware_id}" not in asked  # never asked of Cellcast


def test_deferred_after_failover_the_trigger_asks_each_connection_and_finishes(
    make_conn: Any, quick_sandbox: Any
) -> None:
    import asyncio

    from tests.airflow_names import TaskDeferred

    result = failed_over_send(make_conn, quick_sandbox)
    sensor = SmsDeliverySensor(
        task_id="d", sms_conn_id="cellcast_default", result=result, deferrable=True, poke_interval=0.2, timeout=30
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})  # type: ignore[arg-type]
    trigger = deferred.value.trigger
    _path, kwargs = trigger.serialize()
    rebuilt = type(trigger)(**kwargs)  # as the triggerer rebuilds it

    async def first_event() -> Any:
        async for event in rebuilt.run():
            return event

    fired = asyncio.run(asyncio.wait_for(first_event(), timeout=20))
    event = fired.payload
    assert event["status"] == "done"
    # What the triggerer logs ("Trigger fired event") masks the numbers the reports carry.
    assert DELIVERED not in repr(fired) and NIGERIA not in repr(fired)
    outcome = sensor.execute_complete({}, event)  # type: ignore[arg-type]
    assert outcome["delivered"] == [DELIVERED] and outcome["sent"] == [NIGERIA] and outcome["pending"] == []
