"""A hostile inbox blinds no waiter: one shared poll, several waiters, a loopback server answering the worst.

An item whose time overflows, an id holding a lone surrogate and a page nested 100,000 levels deep each
killed the shared poll for every waiter on the inbox. Here they are skipped (items) or a failed poll
retried with backoff (the page), and every waiter still gets its reply. Also: the minimum poll interval,
the event trigger's auth policy, and what the triggerer's log line shows of an event.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

pytest.importorskip("airflow.triggers.shared_stream", reason="shared trigger streams need Airflow 3.3")

from airflow_provider_sms.core.errors import SmsAuthError, SmsValidationError
from airflow_provider_sms.triggers.inbound import InboundSmsEventTrigger, InboundSmsTrigger
from airflow_provider_sms.triggers.inbox import Inbox
from tests.payloads import cloudware_item
from tests.scripted_server import Answer, ScriptedServer
from tests.triggers.test_shared_inbox import Triggerer, waiter

MESSAGES = "/v1/sms/messages"
WAITERS = ["+61400000011", "+61400000012", "+61400000013"]


def listing(*items: dict) -> dict:
    return {"data": list(items), "next_page": None}


def test_unreadable_items_and_an_unparseable_page_blind_no_waiter(
    make_conn: Any, server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    overflow = cloudware_item("YES", "9999-12-31T23:59:59-14:00", "o1", sender="61400000099")
    surrogate = dict(cloudware_item("YES", now, "s1", sender="61400000098"), message_id="bad\ud800id")
    first = cloudware_item("yes", now, "r1", sender=WAITERS[0][1:])
    later = now + timedelta(seconds=1)
    rest = [cloudware_item("yes", later, f"r{i}", sender=n[1:]) for i, n in enumerate(WAITERS[1:], 2)]
    deep = "[" * 100_000 + "]" * 100_000
    server.script(
        "GET",
        MESSAGES,
        Answer(200, listing(overflow, surrogate, first)),
        Answer(200, deep),  # a page that cannot be parsed: a failed poll, not a dead stream
        Answer(200, listing(*rest, overflow, surrogate, first)),
        *[Answer(200, listing(*rest, overflow, surrogate, first)) for _ in range(20)],
    )
    make_conn("hostile", "cloudware", host=server.url, country_code="61")
    Inbox._open.clear()
    since = now - timedelta(seconds=5)

    async def scenario() -> None:
        triggerer = Triggerer()
        try:
            ids = [triggerer.add(waiter(n, since=since, conn="hostile", interval=0.1)) for n in WAITERS]
            await triggerer.until(lambda: all(triggerer.events[i] for i in ids))
            for i, number in zip(ids, WAITERS, strict=True):
                (event,) = triggerer.events[i]
                assert event["status"] == "matched" and event["message"]["from_number"] == number
                assert "raw" not in event["message"]  # the provider's item stays out of the event
        finally:
            await triggerer.stop()

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    skipped = [r.getMessage() for r in caplog.records if "listing item(s) that could not be read" in r.getMessage()]
    assert len(skipped) == 1  # each unreadable item is logged once, not on every poll
    assert "61400000099" not in " ".join(r.getMessage() for r in caplog.records)
    assert any("a page of the listing could not be read" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("interval", [0, -1, 0.5, float("nan")])
def test_a_poll_interval_below_the_minimum_is_refused_when_built(interval: float, monkeypatch: Any) -> None:
    import airflow_provider_sms.core.inbound as inbound

    monkeypatch.setattr(inbound, "MIN_POLL_INTERVAL", 1.0)
    with pytest.raises(SmsValidationError, match="at least 1 s"):
        InboundSmsTrigger("c", poll_interval=interval)
    with pytest.raises(SmsValidationError, match="at least 1 s"):
        InboundSmsEventTrigger("c", poll_interval=interval)


def test_the_event_trigger_ends_with_the_auth_error_on_a_401(make_conn: Any, server: ScriptedServer) -> None:
    server.script("GET", MESSAGES, Answer(200, listing()), *[Answer(401, {"message": "bad token"})] * 5)
    make_conn("revoked", "cloudware", host=server.url, country_code="61")
    trigger = InboundSmsEventTrigger("revoked", match=["yes"], poll_interval=0.1)

    async def drain() -> None:
        async with asyncio.timeout(10):
            async for _ in trigger.run():
                pass

    with pytest.raises(SmsAuthError):
        asyncio.run(drain())
    assert len(server.calls("GET", MESSAGES)) == 2  # no polling forever


def test_the_logged_event_shows_the_number_masked_and_no_text(make_conn: Any, server: ScriptedServer) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    server.script("GET", MESSAGES, Answer(200, listing(cloudware_item("yes, my secret", now, "m1"))))
    make_conn("quiet", "cloudware", host=server.url, country_code="61")
    trigger = InboundSmsTrigger("quiet", since=(now - timedelta(seconds=5)).isoformat(), poll_interval=0.1)

    async def first() -> Any:
        async for event in trigger.run():
            return event
        raise AssertionError("no event")

    event = asyncio.run(first())
    assert event.payload["message"]["text"] == "yes, my secret"  # the task gets the message
    logged = repr(event)  # what Airflow's "Trigger fired event" line shows
    assert "61400000001" not in logged and "secret" not in logged and "+614*****001" in logged


def test_slow_sync_work_never_blocks_the_event_loop(make_conn: Any, server: ScriptedServer, monkeypatch: Any) -> None:
    """Connection lookups and number parsing are sync (and slow the first time): they run in threads."""
    import time

    import airflow_provider_sms.core.inbound as inbound
    import airflow_provider_sms.hooks as hooks

    now = datetime.now(timezone.utc).replace(microsecond=0)
    server.script("GET", MESSAGES, Answer(200, listing(cloudware_item("yes", now, "m1", sender="61400000011"))))
    make_conn("slow", "cloudware", host=server.url, country_code="61")
    real_hook, real_filter = hooks.get_sms_hook, inbound.build_filter

    def slow_hook(conn_id: str) -> Any:
        time.sleep(0.3)
        return real_hook(conn_id)

    def slow_filter(**kwargs: Any) -> Any:
        time.sleep(0.3)
        return real_filter(**kwargs)

    monkeypatch.setattr(hooks, "get_sms_hook", slow_hook)
    monkeypatch.setattr("airflow_provider_sms.triggers.inbound.build_filter", slow_filter)
    trigger = InboundSmsTrigger(
        "slow", from_numbers=["0400000011"], since=(now - timedelta(seconds=5)).isoformat(), poll_interval=0.1
    )

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        worst = 0.0

        async def monitor() -> None:
            nonlocal worst
            while True:
                before = loop.time()
                await asyncio.sleep(0.01)
                worst = max(worst, loop.time() - before - 0.01)

        watching = asyncio.create_task(monitor())
        async for event in trigger.run():
            assert event.payload["status"] == "matched"
            break
        watching.cancel()
        return worst

    assert asyncio.run(scenario()) < 0.1
