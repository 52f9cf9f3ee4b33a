"""``DeliveryFallbackTrigger`` against the sandbox: it fires when a text is not delivered, when every
text is confirmed, at ``wake_at`` for a provider without reports, and on an ``ACK`` reply; it survives
a serialize round trip and its ``repr`` masks numbers."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_sms.triggers.fallback import DeliveryFallbackTrigger
from tests.conftest import reply_when_texted

FAILS, OK, SECOND_PHONE = "+61400000911", "+61400000031", "+61400000022"


def first_event(trigger: DeliveryFallbackTrigger, limit: float = 30) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        async for event in trigger.run():
            assert "61400000" not in repr(event)  # what the triggerer logs: numbers masked
            return dict(event.payload)
        raise AssertionError("no event")

    return asyncio.run(asyncio.wait_for(run(), limit))


def in_seconds(seconds: float) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat()


def sent(sandbox: Any, make_conn: Any, conn_type: str, numbers: list[str]) -> list[dict[str, Any]]:
    from airflow_provider_sms.hooks import get_sms_hook

    conn_id = f"{conn_type}_default"
    make_conn(conn_id, conn_type, host=sandbox.url)
    hook = get_sms_hook(conn_id)
    result = hook.send_sms(to=numbers, message="INCIDENT: the load failed")
    return [
        {
            "conn_id": conn_id,
            "message_id": a["message_id"],
            "to": a["to"],
            "deliver_by": in_seconds(60),
            "confirm": hook.last_delivery_status,
        }
        for a in result.accepted
    ]


def test_a_failed_text_fires_at_once_with_its_report(sandbox: Any, make_conn: Any) -> None:
    sandbox.store.settings.delivery.update({"sent_after": 0.1, "final_after": 0.3})
    messages = sent(sandbox, make_conn, "cellcast", [FAILS, OK])
    started = time.monotonic()
    trigger = DeliveryFallbackTrigger(
        "cellcast_default", messages=messages, wake_at=in_seconds(20), poll_interval=0.2, state={"ladder": {"level": 0}}
    )
    event = first_event(trigger)
    assert event["status"] == "reports" and event["state"] == {"ladder": {"level": 0}}
    assert {r["to"]: r["status"] for r in event["reports"]}[FAILS] == "failed"
    assert all(r["conn_id"] == "cellcast_default" for r in event["reports"])
    assert time.monotonic() - started < 5  # long before wake_at


def test_every_text_confirmed_fires_without_an_ack_to_wait_for(sandbox: Any, make_conn: Any) -> None:
    sandbox.store.settings.delivery.update({"sent_after": 0.1, "final_after": 0.3})
    messages = sent(sandbox, make_conn, "cellcast", [OK])
    event = first_event(
        DeliveryFallbackTrigger("cellcast_default", messages=messages, wake_at=in_seconds(20), poll_interval=0.2)
    )
    assert event["status"] == "reports" and [r["status"] for r in event["reports"]] == ["delivered"]


def test_cloudware_counts_sent_as_confirmed(sandbox: Any, make_conn: Any) -> None:
    sandbox.store.settings.delivery.update({"sent_after": 0.1, "final_after": 0.3})
    messages = sent(sandbox, make_conn, "cloudware", [OK])
    assert messages[0]["confirm"] == "sent"
    event = first_event(
        DeliveryFallbackTrigger("cloudware_default", messages=messages, wake_at=in_seconds(20), poll_interval=0.2)
    )
    assert event["status"] == "reports" and [r["status"] for r in event["reports"]] == ["sent"]


def test_a_provider_without_reports_waits_for_wake_at(sandbox: Any, make_conn: Any) -> None:
    messages = sent(sandbox, make_conn, "clickatell", [OK])
    started = time.monotonic()
    event = first_event(
        DeliveryFallbackTrigger("clickatell_default", messages=messages, wake_at=in_seconds(1.0), poll_interval=0.2)
    )
    assert event["status"] == "wake" and event["reports"] == []
    assert 0.8 < time.monotonic() - started < 5


def test_an_ack_reply_from_a_paged_number_fires_acked(sandbox: Any, make_conn: Any) -> None:
    reply_when_texted(sandbox.store, OK, "ack, on it")  # type: ignore[attr-defined]
    since = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    messages = sent(sandbox, make_conn, "cloudware", [OK])
    trigger = DeliveryFallbackTrigger(
        "cloudware_default", messages=messages, wake_at=in_seconds(20), poll_interval=0.2, ack_from=[OK], since=since
    )
    event = first_event(trigger)
    assert event["status"] == "acked" and event["message"]["from_number"] == OK


def test_no_ack_in_time_fires_wake_even_when_delivered(sandbox: Any, make_conn: Any) -> None:
    sandbox.store.settings.delivery.update({"sent_after": 0.1, "final_after": 0.2})
    since = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    messages = sent(sandbox, make_conn, "cellcast", [OK])
    trigger = DeliveryFallbackTrigger(
        "cellcast_default", messages=messages, wake_at=in_seconds(1.5), poll_interval=0.2, ack_from=[OK], since=since
    )
    event = first_event(trigger)
    assert event["status"] == "wake" and [r["status"] for r in event["reports"]] == ["delivered"]


def test_an_auth_failure_is_an_error_event(sandbox: Any, make_conn: Any) -> None:
    messages = sent(sandbox, make_conn, "cellcast", [OK])
    sandbox.store.settings.tokens = set()  # every token refused from now on
    event = first_event(
        DeliveryFallbackTrigger("cellcast_default", messages=messages, wake_at=in_seconds(20), poll_interval=0.2)
    )
    assert event["status"] == "error"


def test_serialize_round_trip_and_masked_repr() -> None:
    trigger = DeliveryFallbackTrigger(
        "cloudware_default",
        messages=[{"conn_id": "c", "message_id": "m1", "to": OK, "deliver_by": in_seconds(5), "confirm": "sent"}],
        wake_at=in_seconds(5),
        poll_interval=2,
        ack_from=[OK],
        since=in_seconds(0),
        state={"ladder": {"messages": [{"to": FAILS}]}},
    )
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_sms.triggers.fallback.DeliveryFallbackTrigger"
    again = DeliveryFallbackTrigger(**kwargs)
    assert again.serialize() == (path, kwargs)
    assert again.shared_stream_key() is not None  # waits for an ACK: the inbox's shared poll
    assert DeliveryFallbackTrigger("c", messages=[], wake_at=in_seconds(1)).shared_stream_key() is None
    assert "61400000" not in repr(again)


def test_the_notifier_path_falls_back_in_the_running_loop(sandbox: Any, make_conn: Any) -> None:
    """``afallback_notify`` (``SmsNotifier.async_notify``, the triggerer): no task instance, same ladder."""
    from airflow_provider_sms.triggers.fallback import afallback_notify

    sandbox.store.settings.delivery.update({"sent_after": 0.1, "final_after": 0.3})
    make_conn("cellcast_default", "cellcast", host=sandbox.url)
    make_conn("clickatell_default", "clickatell", host=sandbox.url)
    out = asyncio.run(
        asyncio.wait_for(
            afallback_notify(
                {},
                conn_ids=["cellcast_default", "clickatell_default"],
                to=[FAILS, OK],
                text="Airflow DEADLINE MISSED",
                deliver_within=timedelta(seconds=10),
                poll_interval=0.2,
            ),
            30,
        )
    )
    assert out["status"] == "sent" and out["reached"] == {OK: "cellcast_default"}
    assert out["unconfirmed"] == {FAILS: "clickatell_default"}
    outgoing = [(r["phone"], r["provider"]) for r in sandbox.store.all() if r["direction"] == "out"]
    assert sorted(outgoing) == sorted([(FAILS, "cellcast"), (OK, "cellcast"), (FAILS, "clickatell")])


def test_the_sync_notifier_path_is_bounded_by_deliver_within(sandbox: Any, make_conn: Any) -> None:
    """``fallback_notify`` (``SmsNotifier.notify`` in a worker): no report in time moves on, then it ends."""
    from airflow_provider_sms.triggers.fallback import fallback_notify

    sandbox.store.settings.delivery.update({"sent_after": 0.1, "final_after": 60})  # no report in time
    make_conn("cellcast_default", "cellcast", host=sandbox.url)
    make_conn("cloudware_default", "cloudware", host=sandbox.url)
    started = time.monotonic()
    out = fallback_notify(
        {},
        conn_ids=["cellcast_default", "cloudware_default"],
        to=OK,
        text="Airflow FAILED",
        deliver_within=1.0,
        poll_interval=0.2,
    )
    took = time.monotonic() - started
    assert [t["conn_id"] for t in out["texts"]] == ["cellcast_default", "cloudware_default"]
    assert out["status"] == "sent" and 1.0 <= took < 1.0 + 5  # deliver_within of the one step that waited


def test_an_ack_through_the_inbox_shared_poll(sandbox: Any, make_conn: Any) -> None:
    """Airflow 3.3: the ack wait joins the connection's shared inbox poll, as the triggerer runs it."""
    shared_stream = pytest.importorskip("airflow.triggers.shared_stream", reason="shared streams need Airflow 3.3")
    from airflow_provider_sms.triggers.inbound import InboundSmsTrigger
    from airflow_provider_sms.triggers.inbox import Inbox

    Inbox._open.clear()
    since = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    messages = sent(sandbox, make_conn, "cloudware", [OK])
    paging = DeliveryFallbackTrigger(
        "cloudware_default", messages=messages, wake_at=in_seconds(20), poll_interval=0.2, ack_from=[OK], since=since
    )
    other = InboundSmsTrigger(
        "cloudware_default", from_numbers=[SECOND_PHONE], match=["yes"], since=since, poll_interval=0.2
    )
    assert paging.shared_stream_key() == other.shared_stream_key()

    async def run() -> dict[str, Any]:
        manager = shared_stream.SharedStreamManager()
        key = paging.shared_stream_key()
        stream = manager.subscribe(trigger_id=1, trigger=paging, key=key)
        manager.subscribe(trigger_id=2, trigger=other, key=key)
        sandbox.store.add_message(direction="in", provider="cloudware", phone=OK, text="ACK", status="received")
        try:
            async for event in paging.filter_shared_stream(stream):
                return dict(event.payload)
        finally:
            await manager.unsubscribe(1, key)
            await manager.unsubscribe(2, key)
        raise AssertionError("no event")

    event = asyncio.run(asyncio.wait_for(run(), 30))
    assert event["status"] == "acked" and event["message"]["from_number"] == OK


@pytest.mark.parametrize("path", ["notify", "async_notify"])
def test_sms_notifier_with_deliver_within(sandbox: Any, make_conn: Any, path: str) -> None:
    """``SmsNotifier(deliver_within=..., fallback_conn_ids=...)``: in a worker's callback (``notify``) and
    in the triggerer (``async_notify``, run here in an event loop) the alert reaches the number that
    fails through Cellcast through Clickatell, and the delivered number gets one text."""
    from airflow_provider_sms.notifications.sms import SmsNotifier

    sandbox.store.settings.delivery.update({"sent_after": 0.1, "final_after": 0.3})
    make_conn("cellcast_default", "cellcast", host=sandbox.url)
    make_conn("clickatell_default", "clickatell", host=sandbox.url)
    notifier = SmsNotifier(
        sms_conn_id="cellcast_default",
        to=[FAILS, OK],
        message="Airflow FAILED: sms_alerting.load",
        group_window=None,
        fallback_conn_ids=["clickatell_default"],
        deliver_within=timedelta(seconds=10),
        delivery_poll_interval=0.2,
    )
    if path == "notify":
        notifier.notify({})  # type: ignore[arg-type]
    else:
        asyncio.run(asyncio.wait_for(notifier.async_notify({}), 30))  # type: ignore[arg-type]
    outgoing = sorted((r["phone"], r["provider"]) for r in sandbox.store.all() if r["direction"] == "out")
    assert outgoing == [(OK, "cellcast"), (FAILS, "cellcast"), (FAILS, "clickatell")]
