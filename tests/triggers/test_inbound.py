"""The triggers: serialization round-trips, and real runs yielding matched, timeout and error events."""

from __future__ import annotations

import asyncio
import importlib
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_sms._compat import AIRFLOW_V_3
from airflow_provider_sms.triggers.inbound import InboundSmsEventTrigger, InboundSmsTrigger
from tests.payloads import CLOUDWARE_MESSAGES, cloudware_item

URL = CLOUDWARE_MESSAGES
item = cloudware_item


def rebuild(trigger: Any) -> Any:
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)(**kwargs)


async def events(trigger: Any, limit: int) -> list[Any]:
    out = []
    async for event in trigger.run():
        out.append(event.payload)
        if len(out) >= limit:
            break
    return out


needs_airflow_3 = pytest.mark.skipif(not AIRFLOW_V_3, reason="AssetWatcher event triggers need Airflow 3")


def test_trigger_serialize_round_trips() -> None:
    trigger = InboundSmsTrigger(
        "c",
        from_numbers=["+61400000001"],
        match=["YES"],
        since="2030-01-01T00:00:00+00:00",
        poll_interval=5,
        timeout_at="2030-01-02T00:00:00+00:00",
    )
    assert rebuild(trigger).serialize() == trigger.serialize()


@needs_airflow_3
def test_event_trigger_serialize_round_trips() -> None:
    event = InboundSmsEventTrigger("c", match="^YES$", poll_interval=7)
    assert rebuild(event).serialize() == event.serialize()


@pytest.mark.skipif(AIRFLOW_V_3, reason="Airflow 2.11 only")
def test_event_trigger_says_it_needs_airflow_3() -> None:
    with pytest.raises(RuntimeError, match="needs Airflow 3"):
        InboundSmsEventTrigger("c")


def test_trigger_yields_the_match(make_conn: Any, requests_mock: Any) -> None:
    make_conn("replies", "cloudware")
    now = datetime.now(timezone.utc)
    requests_mock.get(
        URL,
        [
            {"json": {"data": []}},
            {"json": {"data": [item("yes!", now, "m1")]}},
        ],
    )
    trigger = InboundSmsTrigger(
        "replies", match=["yes"], since=(now - timedelta(minutes=1)).isoformat(), poll_interval=0.01
    )
    (payload,) = asyncio.run(events(trigger, 1))
    assert payload["status"] == "matched"
    assert payload["message"]["message_id"] == "m1"


def test_trigger_times_out(make_conn: Any, requests_mock: Any) -> None:
    make_conn("replies", "cloudware")
    requests_mock.get(URL, json={"data": []})
    deadline = (datetime.now(timezone.utc) + timedelta(seconds=0.2)).isoformat()
    trigger = InboundSmsTrigger("replies", match=["yes"], poll_interval=0.05, timeout_at=deadline)
    (payload,) = asyncio.run(events(trigger, 1))
    assert payload == {"status": "timeout", "timeout_at": deadline}


def test_trigger_reports_auth_failure(make_conn: Any, requests_mock: Any) -> None:
    make_conn("replies", "cloudware")
    requests_mock.get(URL, status_code=401, json={"message": "bad token"})
    (payload,) = asyncio.run(events(InboundSmsTrigger("replies", poll_interval=0.01), 1))
    assert payload["status"] == "error"
    assert "bad token" in payload["error"]


@needs_airflow_3
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_event_trigger_fires_once_per_new_message(make_conn: Any, requests_mock: Any) -> None:
    make_conn("replies", "cloudware")
    base = datetime.now(timezone.utc) + timedelta(seconds=5)
    old = item("YES", base - timedelta(hours=1), "before-start")
    first = item("YES", base, "a")
    second = item("yes again", base + timedelta(seconds=1), "b")
    requests_mock.get(
        URL,
        [
            {"json": {"data": [old]}},
            {"json": {"data": [first, old]}},
            {"json": {"data": [first, old]}},
            {"json": {"data": [second, first, old]}},
        ],
    )
    trigger = InboundSmsEventTrigger("replies", match=["yes"], poll_interval=0.01)
    payloads = asyncio.run(events(trigger, 2))
    assert [p["message"]["message_id"] for p in payloads] == ["a", "b"]


OUTAGE = {"status_code": 503, "json": {"message": "maintenance"}}


def test_trigger_polls_through_an_outage_to_the_match(make_conn: Any, requests_mock: Any) -> None:
    make_conn("replies", "cloudware")
    now = datetime.now(timezone.utc)
    requests_mock.get(URL, [OUTAGE, OUTAGE, {"json": {"data": [item("yes", now, "m1")]}}])
    trigger = InboundSmsTrigger(
        "replies", match=["yes"], since=(now - timedelta(minutes=1)).isoformat(), poll_interval=0.01
    )
    (payload,) = asyncio.run(events(trigger, 1))
    assert payload["status"] == "matched"
    assert requests_mock.call_count == 3


@needs_airflow_3
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_event_trigger_polls_through_an_outage(make_conn: Any, requests_mock: Any) -> None:
    make_conn("replies", "cloudware")
    later = datetime.now(timezone.utc) + timedelta(seconds=5)
    requests_mock.get(URL, [{"json": {"data": []}}, OUTAGE, {"json": {"data": [item("YES", later, "a")]}}])
    payloads = asyncio.run(events(InboundSmsEventTrigger("replies", match=["yes"], poll_interval=0.01), 1))
    assert [p["message"]["message_id"] for p in payloads] == ["a"]
    assert requests_mock.call_count == 3
