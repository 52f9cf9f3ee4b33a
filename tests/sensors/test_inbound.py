"""InboundSmsSensor with requests-mock: matching, normalization, since, paging, and clear start errors."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_sms._compat import AirflowFailException, AirflowSensorTimeout, PokeReturnValue
from airflow_provider_sms.core.errors import SmsValidationError
from airflow_provider_sms.sensors.inbound import InboundSmsSensor
from tests.airflow_names import TaskDeferred
from tests.payloads import CLOUDWARE_MESSAGES, cloudware_item

URL = CLOUDWARE_MESSAGES
RUN_START = datetime(2030, 1, 1, 12, tzinfo=timezone.utc)


def item(kind: str, sender: str, text: str, created: str, mid: str) -> dict[str, str]:
    return cloudware_item(text, created, mid, sender=sender, kind=kind)


def context() -> dict[str, Any]:
    return {"dag_run": SimpleNamespace(start_date=RUN_START, logical_date=RUN_START), "ti": None}


@pytest.fixture
def cloudware(make_conn: Any) -> str:
    return make_conn("replies", "cloudware", country_code="61")


def test_poke_returns_the_earliest_matching_reply(cloudware: str, requests_mock: Any) -> None:
    requests_mock.get(
        URL,
        json={
            "data": [
                item("message_received", "61400000001", "no wait", "2030-01-01T12:09:00Z", "m4"),
                item("message_received", "61400000001", "Yes, go ahead", "2030-01-01T12:05:00Z", "m3"),
                item("message_sent", "61400000000", "Reply YES to approve", "2030-01-01T12:01:00Z", "m2"),
                item("message_received", "61400000001", "YES", "2030-01-01T11:00:00Z", "m1"),
            ],
            "next_page": f"{URL}?token=P2",
        },
    )
    requests_mock.get(f"{URL}?token=P2", json={"data": []})
    sensor = InboundSmsSensor(task_id="wait", sms_conn_id=cloudware, from_numbers=["0400000001"], match=["YES"])
    sensor._prepare(context())
    outcome = sensor.poke(context())
    assert isinstance(outcome, PokeReturnValue)
    assert outcome.is_done
    assert outcome.xcom_value["message_id"] == "m3"
    assert outcome.xcom_value["from_number"] == "+61400000001"
    # the page holding a message older than the run's start was the last one read
    assert [r.url for r in requests_mock.request_history] == [URL]


def test_sent_messages_and_other_senders_never_match(cloudware: str, requests_mock: Any) -> None:
    requests_mock.get(
        URL,
        json={
            "data": [
                item("message_sent", "61400000001", "YES", "2030-01-01T12:05:00Z", "s1"),
                item("message_received", "61400000002", "YES", "2030-01-01T12:04:00Z", "r1"),
            ]
        },
    )
    sensor = InboundSmsSensor(task_id="wait", sms_conn_id=cloudware, from_numbers="+61400000001", match="YES")
    sensor._prepare(context())
    assert sensor.poke(context()) is False


def test_second_poke_reads_from_the_cursor(cloudware: str, requests_mock: Any) -> None:
    requests_mock.get(
        URL,
        [
            {"json": {"data": [item("message_received", "61400000001", "hmm", "2030-01-01T12:05:00Z", "m1")]}},
            {
                "json": {
                    "data": [
                        item("message_received", "61400000001", "YES", "2030-01-01T12:06:00Z", "m2"),
                        item("message_received", "61400000001", "hmm", "2030-01-01T12:05:00Z", "m1"),
                    ],
                    "next_page": f"{URL}?token=P2",
                }
            },
        ],
    )
    requests_mock.get(f"{URL}?token=P2", json={"data": []})
    sensor = InboundSmsSensor(task_id="wait", sms_conn_id=cloudware, match=["yes"])
    sensor._prepare(context())
    assert sensor.poke(context()) is False
    outcome = sensor.poke(context())
    assert isinstance(outcome, PokeReturnValue)
    assert outcome.xcom_value["message_id"] == "m2"
    # the second poll read one page: the one holding the cursor, nothing older
    assert [r.url for r in requests_mock.request_history] == [URL, URL, f"{URL}?token=P2"]


def test_since_is_templated_and_overrides_the_run_start(cloudware: str, requests_mock: Any) -> None:
    requests_mock.get(URL, json={"data": [item("message_received", "61400000001", "YES", "2030-01-01T11:00:00Z", "m")]})
    sensor = InboundSmsSensor(task_id="wait", sms_conn_id=cloudware, match=["yes"], since="2030-01-01T10:00:00Z")
    sensor._prepare(context())
    assert isinstance(sensor.poke(context()), PokeReturnValue)


def test_provider_without_inbound_listing_fails_at_start(make_conn: Any) -> None:
    make_conn("ck", "clickatell")
    sensor = InboundSmsSensor(task_id="wait", sms_conn_id="ck", match=["yes"])
    with pytest.raises(AirflowFailException, match="no API to list inbound messages"):
        sensor._prepare(context())


def test_unknown_connection_type_fails_at_start(make_conn: Any) -> None:
    make_conn("web", "http")
    with pytest.raises(AirflowFailException, match="not an SMS provider"):
        InboundSmsSensor(task_id="wait", sms_conn_id="web")._prepare(context())


def test_invalid_regex_fails_at_parse_naming_the_pattern() -> None:
    with pytest.raises(SmsValidationError, match=r"'\[YES'"):
        InboundSmsSensor(task_id="wait", sms_conn_id="x", match="[YES")


def test_deferrable_defers_to_the_trigger_with_the_normalized_filter(cloudware: str) -> None:
    from airflow_provider_sms.triggers.inbound import InboundSmsTrigger

    sensor = InboundSmsSensor(
        task_id="wait",
        sms_conn_id=cloudware,
        from_numbers="0400000001",
        match=["yes"],
        deferrable=True,
        poke_interval=5,
        timeout=600,
    )
    with pytest.raises(TaskDeferred) as info:
        sensor.execute(context())
    trigger = info.value.trigger
    assert isinstance(trigger, InboundSmsTrigger)
    _, kwargs = trigger.serialize()
    assert kwargs["from_numbers"] == ["+61400000001"]
    assert kwargs["since"] == RUN_START.isoformat()
    assert kwargs["poll_interval"] == 5


def test_execute_complete_handles_each_event() -> None:
    sensor = InboundSmsSensor(task_id="wait", sms_conn_id="x")
    assert sensor.execute_complete({}, {"status": "matched", "message": {"text": "YES"}}) == {"text": "YES"}
    with pytest.raises(AirflowSensorTimeout):
        sensor.execute_complete({}, {"status": "timeout", "timeout_at": "2030"})
    with pytest.raises(AirflowFailException, match="bad token"):
        sensor.execute_complete({}, {"status": "error", "error": "bad token"})


def test_an_outage_is_logged_and_the_next_poke_still_matches(
    cloudware: str, requests_mock: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    reply = item("message_received", "61400000001", "YES", "2030-01-01T12:05:00Z", "m1")
    requests_mock.get(URL, [{"status_code": 503, "json": {"message": "maintenance"}}, {"json": {"data": [reply]}}])
    sensor = InboundSmsSensor(task_id="wait", sms_conn_id=cloudware, match=["yes"])
    sensor._prepare(context())
    assert sensor.poke(context()) is False
    # Airflow 3 logs through structlog to stdout, Airflow 2.11 through logging
    assert "could not list inbound messages this time" in caplog.text + capsys.readouterr().out
    outcome = sensor.poke(context())
    assert isinstance(outcome, PokeReturnValue)
    assert outcome.xcom_value["message_id"] == "m1"


def test_an_auth_failure_fails_the_sensor_for_good(cloudware: str, requests_mock: Any) -> None:
    requests_mock.get(URL, status_code=401, json={"message": "Unauthenticated."})
    sensor = InboundSmsSensor(task_id="wait", sms_conn_id=cloudware, match=["yes"])
    sensor._prepare(context())
    with pytest.raises(AirflowFailException, match="Unauthenticated"):
        sensor.poke(context())


@pytest.mark.parametrize("interval", [0, -5, 0.2])
def test_a_poke_interval_below_one_second_is_refused_when_built(interval: float) -> None:
    with pytest.raises(SmsValidationError, match="poke_interval must be at least 1 s"):
        InboundSmsSensor(task_id="s", sms_conn_id="c", poke_interval=interval)
