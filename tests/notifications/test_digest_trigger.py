"""``SmsAlertDigestTrigger``: held alerts go out from the triggerer when due, off its event loop, once."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_sms.state.alerts import AlertGroups
from airflow_provider_sms.state.variables import MemoryKeys
from airflow_provider_sms.triggers.digest import SmsAlertDigestTrigger

CLOUDWARE = "https://api.cloudware.chat/v1/sms/send"


def test_the_trigger_texts_a_due_digest_from_a_worker_thread_and_reports_it(
    make_conn: Any, requests_mock: Any, store: MemoryKeys
) -> None:
    make_conn("sms", "cloudware")
    senders = []

    def answer(request: Any, context: Any) -> dict:
        senders.append(threading.current_thread())
        return {"status": "success", "data": {"id": "1"}}

    requests_mock.post(CLOUDWARE, json=answer)
    now = datetime.now(timezone.utc)
    record = {"conn_id": "sms", "summary": "try 2 ValueError: disk full", "max_per_hour": 10}
    groups = AlertGroups(store)
    for minutes in (3, 2):
        groups.hold(
            "+2348012345678",
            "etl.load",
            due=now - timedelta(seconds=1),
            now=now - timedelta(minutes=minutes),
            flag="f",
            record=record,
        )
    groups.hold("+2348012345678", "etl.other", due=now + timedelta(hours=9), now=now, flag="q", record=record)
    trigger = SmsAlertDigestTrigger(poll_interval=0.05)
    assert trigger.serialize() == (
        "airflow_provider_sms.triggers.digest.SmsAlertDigestTrigger",
        {"poll_interval": 0.05},
    )

    async def first_event() -> Any:
        loop_thread = threading.current_thread()
        events = trigger.run()
        event = await asyncio.wait_for(events.__anext__(), 30)
        assert senders and all(thread is not loop_thread for thread in senders)
        await events.aclose()
        return event

    event = asyncio.run(first_event())
    (sent,) = event.payload["digests"]
    assert sent == {"to": "+234*******678", "keys": 1, "alerts": 2, "accepted": True}
    assert requests_mock.call_count == 1  # the one held for quiet hours is not due
    assert requests_mock.last_request.json()["message"].startswith("etl.load: 2 failures since ")
    assert [h.flag for h in groups.held()] == ["q"]
    assert trigger._wait(now + timedelta(hours=9)) == pytest.approx(0.05)
    assert SmsAlertDigestTrigger(poll_interval=30)._wait(datetime.now(timezone.utc) + timedelta(seconds=5)) <= 5


def test_a_poll_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="poll_interval"):
        SmsAlertDigestTrigger(poll_interval=0)
