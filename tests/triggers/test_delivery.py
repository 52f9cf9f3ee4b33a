"""``SmsDeliveryTrigger`` against the sandbox: it fires once with every report, at its timeout with what it
knows, or with an error waiting cannot fix; it survives a serialize round trip."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_sms.triggers.delivery import SmsDeliveryTrigger


def first_event(trigger: SmsDeliveryTrigger) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("no event")

    return asyncio.run(asyncio.wait_for(run(), 30))


def in_seconds(seconds: float) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat()


def sent_ids(sandbox: Any, make_conn: Any, numbers: list[str]) -> dict[str, str]:
    from airflow_provider_sms.hooks import get_sms_hook

    make_conn("cellcast_default", "cellcast", host=sandbox.url)
    result = get_sms_hook("cellcast_default").send_sms(to=numbers, message="hi")
    return {a["message_id"]: a["to"] for a in result.accepted}


def test_fires_once_every_message_settled(sandbox: Any, make_conn: Any) -> None:
    sandbox.store.settings.delivery.update({"sent_after": 0.1, "final_after": 0.3})
    ids = sent_ids(sandbox, make_conn, ["+61400000031", "+61400000912"])
    event = first_event(SmsDeliveryTrigger("cellcast_default", ids, poll_interval=0.2, timeout_at=in_seconds(20)))
    assert event["status"] == "done"
    assert {r["to"]: r["status"] for r in event["reports"]} == {"+61400000031": "delivered", "+61400000912": "expired"}


def test_fires_at_the_timeout_with_what_it_knows(sandbox: Any, make_conn: Any) -> None:
    sandbox.store.settings.delivery.update({"sent_after": 0, "final_after": 3600})
    ids = sent_ids(sandbox, make_conn, ["+61400000031"])
    event = first_event(SmsDeliveryTrigger("cellcast_default", ids, poll_interval=0.2, timeout_at=in_seconds(0.5)))
    assert event["status"] == "timeout"
    assert [r["status"] for r in event["reports"]] == ["sent"]


def test_a_missing_connection_is_an_error_event() -> None:
    event = first_event(SmsDeliveryTrigger("no_such_conn", {"m": "+61400000031"}, timeout_at=in_seconds(5)))
    assert event["status"] == "error" and "no_such_conn" in event["error"]


def test_a_bad_token_is_an_error_event_not_a_wait(sandbox: Any, make_conn: Any) -> None:
    ids = sent_ids(sandbox, make_conn, ["+61400000031"])
    sandbox.store.settings.tokens = {"another-token"}
    event = first_event(SmsDeliveryTrigger("cellcast_default", ids, poll_interval=0.2, timeout_at=in_seconds(20)))
    assert event["status"] == "error"


def test_serialize_round_trip_keeps_every_argument() -> None:
    trigger = SmsDeliveryTrigger("c", {"m": "+61400000031"}, poll_interval=7, timeout_at="2030-01-01T00:00:00+00:00")
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_sms.triggers.delivery.SmsDeliveryTrigger"
    assert SmsDeliveryTrigger(**kwargs).serialize() == (path, kwargs)
