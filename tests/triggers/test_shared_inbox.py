"""Triggers on one inbox share one poll (Airflow 3.3 shared streams), run as the triggerer runs them.

Each test subscribes triggers through Airflow's own ``SharedStreamManager`` and feeds their
``filter_shared_stream`` from it, against the sandbox over loopback, whose statistics count the polls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

pytest.importorskip("airflow.triggers.shared_stream", reason="shared trigger streams need Airflow 3.3")

from airflow.triggers.shared_stream import SharedStreamManager

from airflow_provider_sms.sandbox.faults import Fault
from airflow_provider_sms.triggers.inbound import InboundSmsEventTrigger, InboundSmsTrigger
from airflow_provider_sms.triggers.inbox import Inbox

LISTING = "GET /v1/sms/messages"


@pytest.fixture
def inbox(make_conn: Any, sandbox: Any) -> Any:
    make_conn("inbox", "cloudware", host=sandbox.url, country_code="61")
    make_conn("cellcast_inbox", "cellcast", host=sandbox.url)
    Inbox._open.clear()
    return sandbox


def reply(sandbox: Any, phone: str, text: str, provider: str = "cloudware", ts: str | None = None) -> None:
    sandbox.store.add_message(direction="in", provider=provider, phone=phone, text=text, status="received", ts=ts)


def waiter(number: str, *, since: datetime, timeout: float = 20, interval: float = 0.2, **kw: Any) -> Any:
    return InboundSmsTrigger(
        kw.pop("conn", "inbox"),
        from_numbers=[number],
        match=kw.pop("match", ["yes"]),
        since=since.isoformat(),
        poll_interval=interval,
        timeout_at=(datetime.now(timezone.utc) + timedelta(seconds=timeout)).isoformat(),
    )


class Triggerer:
    """The part of the triggerer that matters here: one SharedStreamManager, one task per trigger."""

    def __init__(self) -> None:
        self.manager = SharedStreamManager()
        self.events: dict[int, list[dict[str, Any]]] = {}
        self.tasks: list[asyncio.Task[None]] = []

    def add(self, trigger: Any) -> int:
        trigger_id = len(self.tasks)
        self.events[trigger_id] = []
        key = trigger.shared_stream_key()
        stream = self.manager.subscribe(trigger_id=trigger_id, trigger=trigger, key=key)

        async def consume() -> None:
            try:
                async for event in trigger.filter_shared_stream(stream):
                    self.events[trigger_id].append(event.payload)
                    if isinstance(trigger, InboundSmsTrigger):
                        return  # a deferred task's trigger is done after its first event
            finally:
                await self.manager.unsubscribe(trigger_id, key)

        self.tasks.append(asyncio.create_task(consume()))
        return trigger_id

    async def until(self, done: Callable[[], bool], timeout: float = 15) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not done():
            assert loop.time() < end, f"timed out; events so far: {self.events}"
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.manager.stop_all()


def run(scenario: Callable[[Triggerer], Awaitable[None]]) -> None:
    async def main() -> None:
        triggerer = Triggerer()
        try:
            await scenario(triggerer)
        finally:
            await triggerer.stop()

    asyncio.run(main())


def test_many_waiters_on_one_inbox_share_one_poll_per_interval(inbox: Any) -> None:
    numbers = [f"+614000001{i:02d}" for i in range(30)]
    since = datetime.now(timezone.utc) - timedelta(seconds=1)

    async def scenario(triggerer: Triggerer) -> None:
        ids = [triggerer.add(waiter(n, since=since)) for n in numbers]
        await asyncio.sleep(0.5)
        for n in numbers:
            reply(inbox, n, f"yes from {n}")
        started = asyncio.get_running_loop().time()
        await triggerer.until(lambda: all(triggerer.events[i] for i in ids))
        elapsed = asyncio.get_running_loop().time() - started
        polls = inbox.faults.stats()["requests"][LISTING]
        assert polls <= (0.5 + elapsed) / 0.2 + 3  # one poll per interval for all 30, not 30 per interval
        for i, number in zip(ids, numbers, strict=True):
            (event,) = triggerer.events[i]
            assert event["status"] == "matched"
            assert event["message"]["from_number"] == number

    run(scenario)


def test_a_late_waiter_still_sees_replies_that_came_before_it_joined(inbox: Any) -> None:
    run_started = datetime.now(timezone.utc) - timedelta(seconds=2)
    two_hours_ago = (datetime.now(timezone.utc) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    async def scenario(triggerer: Triggerer) -> None:
        first = triggerer.add(waiter("+61400000001", since=run_started))
        await asyncio.sleep(0.5)
        reply(inbox, "+61400000002", "YES, before the second waiter joined")
        reply(inbox, "+61400000003", "yes, long ago", ts=two_hours_ago)  # before the stream's first read
        await asyncio.sleep(0.5)
        polls_before = inbox.faults.stats()["requests"][LISTING]
        recent = triggerer.add(waiter("+61400000002", since=run_started))
        await triggerer.until(lambda: bool(triggerer.events[recent]))
        assert inbox.faults.stats()["requests"][LISTING] - polls_before <= 1  # replayed, not re-read
        old = triggerer.add(waiter("+61400000003", since=datetime.now(timezone.utc) - timedelta(hours=3)))
        await triggerer.until(lambda: bool(triggerer.events[old]))
        assert triggerer.events[recent][0]["message"]["text"] == "YES, before the second waiter joined"
        assert triggerer.events[old][0]["message"]["text"] == "yes, long ago"  # one catch-up read found it
        assert triggerer.events[first] == []

    run(scenario)


def test_each_waiter_keeps_its_own_timeout(inbox: Any) -> None:
    since = datetime.now(timezone.utc)

    async def scenario(triggerer: Triggerer) -> None:
        short = triggerer.add(waiter("+61400000001", since=since, timeout=0.6))
        long = triggerer.add(waiter("+61400000002", since=since, timeout=20))
        await triggerer.until(lambda: bool(triggerer.events[short]))
        assert triggerer.events[short][0]["status"] == "timeout"
        reply(inbox, "+61400000002", "yes")
        await triggerer.until(lambda: bool(triggerer.events[long]))
        assert triggerer.events[long][0]["status"] == "matched"

    run(scenario)


def test_an_outage_is_polled_through_and_an_auth_failure_reaches_every_waiter(inbox: Any) -> None:
    since = datetime.now(timezone.utc)
    inbox.faults.add(Fault("GET", "/v1/sms/messages", count=8, status=503))

    async def scenario(triggerer: Triggerer) -> None:
        survivor = triggerer.add(waiter("+61400000001", since=since))
        reply(inbox, "+61400000001", "yes")
        await triggerer.until(lambda: bool(triggerer.events[survivor]))
        assert triggerer.events[survivor][0]["status"] == "matched"
        inbox.store.settings.tokens = {"another-token"}
        doomed = [triggerer.add(waiter(f"+6140000001{i}", since=since)) for i in range(3)]
        await triggerer.until(lambda: all(triggerer.events[i] for i in doomed))
        for i in doomed:
            assert triggerer.events[i][0]["status"] == "error"
            assert "refused the credentials" in triggerer.events[i][0]["error"]

    run(scenario)


def test_event_triggers_fire_once_per_message_across_the_shared_stream(inbox: Any) -> None:
    async def scenario(triggerer: Triggerer) -> None:
        watchers = [triggerer.add(InboundSmsEventTrigger("inbox", match=["stop"], poll_interval=0.2)) for _ in range(3)]
        await asyncio.sleep(0.5)
        for i in range(4):
            reply(inbox, f"+6140000002{i}", "STOP")
        reply(inbox, "+61400000029", "hello")
        await triggerer.until(lambda: all(len(triggerer.events[w]) >= 4 for w in watchers))
        await asyncio.sleep(1.0)  # more polls, the same messages listed again: nothing fires twice
        for w in watchers:
            ids = [e["message"]["message_id"] for e in triggerer.events[w]]
            assert len(ids) == len(set(ids)) == 4

    run(scenario)


def test_waiters_resuming_together_share_one_catch_up_read_and_each_keeps_its_own_since(inbox: Any) -> None:
    since = datetime.now(timezone.utc)
    responses = "GET /api/v1/apiClient/getResponses"
    stamp = (since - timedelta(hours=2, minutes=10)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    reply(inbox, "+61400000002", "yes, long ago", provider="cellcast", ts=stamp)

    async def scenario(triggerer: Triggerer) -> None:
        triggerer.add(waiter("+61400000001", since=since, conn="cellcast_inbox"))
        await triggerer.until(lambda: responses in inbox.faults.stats()["requests"])
        before = inbox.faults.stats()["requests"][responses]
        started = asyncio.get_running_loop().time()
        # 30 waiters resuming together (a triggerer restart), each reaching further back than the last
        late = [
            triggerer.add(waiter("+61400000002", since=since - timedelta(hours=2, minutes=i), conn="cellcast_inbox"))
            for i in range(30)
        ]
        await triggerer.until(lambda: all(triggerer.events[w] for w in late[11:]))
        elapsed = asyncio.get_running_loop().time() - started
        assert all(triggerer.events[w] == [] for w in late[:10])  # the reply is older than their since
        reads = inbox.faults.stats()["requests"][responses] - before
        assert reads <= elapsed / 0.2 + 3  # the polls, plus one shared catch-up: not one read per waiter

    run(scenario)
    # the sandbox answers 429 above Cellcast's 15 calls a second: one hook's limiter kept every read under it
    assert set(inbox.faults.stats()["statuses"][responses]) == {"200"}


def test_the_shared_poll_runs_at_the_shortest_interval_any_waiter_asked_for(inbox: Any) -> None:
    since = datetime.now(timezone.utc)

    async def scenario(triggerer: Triggerer) -> None:
        triggerer.add(InboundSmsEventTrigger("inbox", match=["stop"], poll_interval=30))  # opens the stream
        await triggerer.until(lambda: "GET /v1/sms/messages" in inbox.faults.stats()["requests"])
        fast = triggerer.add(waiter("+61400000001", since=since, interval=0.2))
        reply(inbox, "+61400000001", "yes")
        started = asyncio.get_running_loop().time()
        await triggerer.until(lambda: bool(triggerer.events[fast]), timeout=5)
        assert asyncio.get_running_loop().time() - started < 2  # not the 30 s of the stream's opener

    run(scenario)


def test_a_reply_before_a_waiters_since_never_reaches_it_though_the_stream_reads_an_hour_back(inbox: Any) -> None:
    since = datetime.now(timezone.utc)
    old = (since - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    reply(inbox, "+61400000001", "YES, yesterday's answer", ts=old)

    async def scenario(triggerer: Triggerer) -> None:
        sensor = triggerer.add(waiter("+61400000001", since=since))
        watcher = triggerer.add(InboundSmsEventTrigger("inbox", match=["yes"], poll_interval=0.2))
        await asyncio.sleep(1.0)  # several polls: the old reply is in the inbox's first read
        assert triggerer.events[sensor] == [] and triggerer.events[watcher] == []
        reply(inbox, "+61400000001", "yes")
        await triggerer.until(lambda: bool(triggerer.events[sensor]) and bool(triggerer.events[watcher]))
        assert triggerer.events[sensor][0]["message"]["text"] == "yes"
        assert [e["message"]["text"] for e in triggerer.events[watcher]] == ["yes"]

    run(scenario)
