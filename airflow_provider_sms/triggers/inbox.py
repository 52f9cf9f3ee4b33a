"""One shared poll per inbox for every trigger waiting on it (Airflow 3.3's shared trigger streams).

When many triggers wait on the same connection's inbound messages, the triggerer runs one
``open_inbox_stream`` per connection: one hook, one HTTP session, one pacing limiter, one poll per
interval (the shortest any current waiter asked for). Each poll's new messages are broadcast as an
``InboxPoll``; every waiter applies its own filter (numbers, match, since, timeout) to them.

No reply is missed because of sharing: the ``Inbox`` keeps the messages of the recent past
(``RETAIN``, at most ``MAX_KEPT``) and how far back it has read (``covered_since``). A waiter that
joins late replays what the inbox kept from its own ``since``; if its ``since`` is older than what was
read, a catch-up read extends the inbox back to it. Waiters resuming together (a triggerer restart)
share one catch-up: the first to ask waits ``GATHER`` seconds for the others, then one read (paged and
bounded) goes back to the oldest ``since`` asked, and its result serves every waiter whose ``since``
it reaches, for ``CATCH_UP_VALID``. The stream starts by reading ``LOOKBACK`` into the past, so
waiters of runs started in the last hour need no catch-up at all.

The stream never dies of what a provider sends: an unreadable item is skipped (``core.listing``), and
a poll that fails in any way is reported to the waiters as a failed poll and retried with backoff
(doubling from the interval up to ``MAX_BACKOFF``).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

from airflow_provider_sms.core import inbound as _inbound
from airflow_provider_sms.core.errors import SmsError, SmsProviderUnavailableError, SmsValidationError
from airflow_provider_sms.core.inbound import InboundFilter, advance, poll_replies
from airflow_provider_sms.core.results import InboundMessage
from airflow_provider_sms.core.timestamps import parse_timestamp

log = logging.getLogger(__name__)

STREAM_KIND = "airflow_provider_sms.inbox"
LOOKBACK = timedelta(hours=1)
RETAIN = timedelta(hours=2)
MAX_KEPT = 5000
CATCH_UP_SECONDS = 60.0
POLL_BUDGET = 60.0  # seconds one poll may page for, however many pages a server offers
GATHER = 0.5  # seconds a catch-up waits for the other waiters resuming with it
CATCH_UP_VALID = timedelta(minutes=10)  # how long one catch-up's result serves later waiters
MAX_BACKOFF = 300.0  # the longest pause after failed polls
WAKE_BATCH = 100  # waiters woken per loop turn after a shared catch-up, so the loop never stalls on them


def _time(message: InboundMessage) -> datetime:
    return message.received_at


@dataclass(frozen=True)
class InboxPoll:
    """One shared poll's outcome, broadcast to every waiter: the new messages (oldest first), or an error.

    ``by_sender`` indexes the messages by sender once for all waiters, so a waiter for one number finds
    its reply without scanning what everyone else received.
    """

    messages: tuple[InboundMessage, ...] = ()
    error: str | None = None
    retryable: bool = True
    cause: SmsError | None = field(default=None, compare=False)
    by_sender: Mapping[str, tuple[InboundMessage, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, messages: Sequence[InboundMessage]) -> InboxPoll:
        by_sender: dict[str, list[InboundMessage]] = {}
        for message in messages:
            by_sender.setdefault(message.from_number, []).append(message)
        return cls(tuple(messages), by_sender={k: tuple(v) for k, v in by_sender.items()})

    def from_any(self, senders: Collection[str]) -> list[InboundMessage]:
        """The messages from these senders (all of them when ``senders`` is empty)."""
        if not senders:
            return list(self.messages)
        return [m for sender in senders for m in self.by_sender.get(sender, ())]


class Inbox:
    """The shared state of one connection's stream: its hook, the recent messages, how far back they go.

    Lives in the triggerer's event loop; ``Inbox.for_connection`` finds the one a stream or a waiter
    needs (the first of the two to ask creates it).
    """

    _open: ClassVar[dict[str, Inbox]] = {}

    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        self.hook: Any = None
        self.region: str | None = None
        self.failure: SmsError | None = None  # set when the stream cannot start (no such connection...)
        self.covered_since: datetime | None = None
        self.ready = asyncio.Event()
        self._kept: list[InboundMessage] = []  # oldest first
        self._by_sender: dict[str, list[InboundMessage]] = {}  # the same messages per sender, oldest first
        self._ids: set[str] = set()
        self._intervals: Counter[float] = Counter()  # what each waiter asked for: the poll runs at the shortest
        self._woken = asyncio.Event()
        self._wanted: list[tuple[datetime, asyncio.Future[None]]] = []  # waiters asking for a catch-up
        self._catching_up: asyncio.Task[None] | None = None
        # the last catch-up: how far back it reached, when it was read, its messages by sender (oldest first)
        self._caught_up: tuple[datetime, datetime, dict[str, list[InboundMessage]]] | None = None

    @classmethod
    def for_connection(cls, conn_id: str) -> Inbox:
        if conn_id not in cls._open:
            cls._open[conn_id] = cls(conn_id)
        return cls._open[conn_id]

    @classmethod
    def close(cls, inbox: Inbox) -> None:
        if cls._open.get(inbox.conn_id) is inbox:
            del cls._open[inbox.conn_id]

    def join(self, interval: float) -> None:
        """A waiter wants polls every ``interval`` seconds (a shorter one wakes the stream at once)."""
        self._intervals[interval] += 1
        self._woken.set()

    def leave(self, interval: float) -> None:
        self._intervals[interval] -= 1
        if self._intervals[interval] <= 0:
            del self._intervals[interval]

    async def pause(self, default: float, *, at_least: float = 0.0) -> None:
        """Sleep until the next poll is due: the shortest interval any current waiter asked for (never
        less than ``MIN_POLL_INTERVAL``, nor than ``at_least``, the backoff after failed polls)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            due = max(min(self._intervals, default=default), _inbound.MIN_POLL_INTERVAL, at_least)
            left = due - (loop.time() - started)
            if left <= 0:
                return
            self._woken.clear()
            try:
                await asyncio.wait_for(self._woken.wait(), left)
            except asyncio.TimeoutError:
                return

    def keep(self, messages: Iterable[InboundMessage], *, now: datetime | None = None) -> list[InboundMessage]:
        """Remember messages; return those not seen before, oldest first."""
        fresh = sorted({m.message_id: m for m in messages if m.message_id not in self._ids}.values(), key=_time)
        for message in fresh:
            self._ids.add(message.message_id)
            bisect.insort(self._kept, message, key=_time)
            bisect.insort(self._by_sender.setdefault(message.from_number, []), message, key=_time)
        self._forget_old(now or datetime.now(timezone.utc))
        return fresh

    def kept_since(self, moment: datetime | None, senders: Collection[str] = ()) -> list[InboundMessage]:
        """The kept messages received at or after ``moment`` (from ``senders``, if given), oldest first."""
        lists = [self._by_sender.get(s, []) for s in senders] if senders else [self._kept]
        found: list[InboundMessage] = []
        for kept in lists:
            found += kept[bisect.bisect_left(kept, moment, key=_time) :] if moment is not None else kept
        return sorted(found, key=_time) if len(lists) > 1 else found

    def _forget_old(self, now: datetime) -> None:
        """Drop what is older than ``RETAIN`` or beyond ``MAX_KEPT``; what is kept still reaches back to
        ``covered_since``."""
        horizon = now - RETAIN
        cut = bisect.bisect_left(self._kept, horizon, key=_time)
        capped = len(self._kept) - MAX_KEPT
        if capped > cut:
            cut, horizon = capped, self._kept[capped].received_at
        for message in self._kept[:cut]:
            self._ids.discard(message.message_id)
            same_sender = self._by_sender[message.from_number]
            same_sender.remove(message)
            if not same_sender:
                del self._by_sender[message.from_number]
        del self._kept[:cut]
        if self.covered_since is not None and self.covered_since < horizon:
            self.covered_since = horizon

    def covers(self, since: datetime | None) -> bool:
        return self.covered_since is not None and since is not None and self.covered_since <= since

    async def read_back(self, since: datetime, senders: Collection[str] = ()) -> list[InboundMessage]:
        """The messages received since ``since`` (from ``senders``, if given), oldest first, reading back if
        the inbox does not reach that far: one read for every waiter asking within ``GATHER`` seconds,
        back to the oldest of them.

        :raises SmsError: the catch-up read failed (the caller decides whether to try again).
        """
        while True:
            if self.covers(since):
                return self.kept_since(since, senders)
            found = self._from_catch_up(since, senders)
            if found is not None:
                return found
            wanted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._wanted.append((since, wanted))
            if self._catching_up is None or self._catching_up.done():
                self._catching_up = asyncio.create_task(self._catch_up())
            await wanted

    def _from_catch_up(self, since: datetime, senders: Collection[str]) -> list[InboundMessage] | None:
        """What the last catch-up read plus the polls since hold from ``since``; None if it does not reach.

        Indexed by sender, so each of a thousand waiters woken together costs a lookup, not a scan.
        """
        if self._caught_up is None:
            return None
        reached, read_at, by_sender = self._caught_up
        if reached > since or datetime.now(timezone.utc) - read_at > CATCH_UP_VALID:
            return None
        lists = [by_sender.get(s, []) for s in senders] if senders else list(by_sender.values())
        found = {m.message_id: m for kept in lists for m in kept[bisect.bisect_left(kept, since, key=_time) :]}
        for message in self.kept_since(since, senders):
            found.setdefault(message.message_id, message)
        return sorted(found.values(), key=_time)

    async def _catch_up(self) -> None:
        """One read back to the oldest ``since`` wanted, shared by every waiter that asked meanwhile."""
        await asyncio.sleep(GATHER)
        wanted, self._wanted = self._wanted, []
        try:
            if wanted:
                await self._read_for([since for since, _ in wanted])
            for start in range(0, len(wanted), WAKE_BATCH):  # a thousand waiters wake over several loop turns
                for _, future in wanted[start : start + WAKE_BATCH]:
                    if not future.done():
                        future.set_result(None)
                await asyncio.sleep(0)
        except BaseException as err:  # every waiter of this catch-up hears why (and may ask again)
            failure = err if isinstance(err, SmsError) else SmsProviderUnavailableError(type(err).__name__)
            for _, future in wanted:
                if not future.done():
                    future.set_exception(failure)
            if not isinstance(err, Exception):
                raise

    async def _read_for(self, sinces: list[datetime]) -> None:
        """Read back to the oldest of ``sinces`` and keep the result (bounded: ``MAX_PAGES`` per read, at
        most ``MAX_KEPT`` messages kept, as every poll is bounded)."""
        oldest = min(sinces)
        read_at = datetime.now(timezone.utc)
        scan = await asyncio.to_thread(
            poll_replies,
            self.hook,
            InboundFilter(since=oldest),
            keep_all=True,
            stop_at=time.monotonic() + CATCH_UP_SECONDS,
        )
        messages = sorted(scan.all_matches, key=_time)
        if self._caught_up is not None and self._caught_up[0] < oldest:
            merged = {m.message_id: m for kept in self._caught_up[2].values() for m in kept}
            merged.update((m.message_id, m) for m in messages)
            oldest, messages = self._caught_up[0], sorted(merged.values(), key=_time)
        messages = messages[-MAX_KEPT:]
        by_sender: dict[str, list[InboundMessage]] = {}
        for message in messages:
            by_sender.setdefault(message.from_number, []).append(message)
        self._caught_up = (oldest, read_at, by_sender)
        self.keep(m for m in messages if m.received_at >= read_at - RETAIN)


def stream_key(conn_id: str) -> tuple[str, str]:
    """The shared-stream key: what is read depends on the connection alone, not on any waiter's filter."""
    return (STREAM_KIND, conn_id)


async def open_inbox_stream(kwargs: dict[str, Any], *, inbox: Inbox | None = None) -> AsyncIterator[InboxPoll]:
    """Poll one connection's inbox every ``poll_interval`` seconds, for as long as it is read.

    :param kwargs: the serialized kwargs of the trigger that opened the stream; only ``sms_conn_id``,
        ``poll_interval``, ``since`` and (private streams) ``timeout_at`` are read: the first two define
        the stream, ``since`` only how far back its first read goes.
    :param inbox: a private inbox (one trigger polling on its own, reading from its own ``since``);
        without it the stream is the connection's shared one and reads ``LOOKBACK`` into the past.
    """
    from asgiref.sync import sync_to_async

    from airflow_provider_sms.hooks import get_sms_hook

    conn_id = str(kwargs["sms_conn_id"])
    interval = max(float(kwargs.get("poll_interval") or 60.0), _inbound.MIN_POLL_INTERVAL)
    shared = inbox is None
    inbox = inbox or Inbox.for_connection(conn_id)
    try:

        def open_hook() -> Any:  # the connection lookup, checks and number metadata: all off the loop
            opened = get_sms_hook(conn_id)
            opened.check_lists_inbound()
            _ = opened.default_region, opened.client
            return opened

        try:
            hook = await sync_to_async(open_hook)()
        except Exception as err:  # a missing connection, Clickatell...: waiting cannot fix it
            inbox.failure = err if isinstance(err, SmsError) else SmsValidationError(f"{conn_id!r}: {err}")
        if inbox.failure is not None:
            inbox.ready.set()
            while True:  # every waiter reports the failure and leaves, which ends the group
                yield InboxPoll(error=str(inbox.failure), retryable=False, cause=inbox.failure)
                await inbox.pause(interval)
        inbox.hook, inbox.region = hook, hook.default_region
        now = datetime.now(timezone.utc)
        asked = parse_timestamp(kwargs["since"]) if kwargs.get("since") else now
        start = (min(asked, now - LOOKBACK) if shared else asked).replace(microsecond=0)
        flt = InboundFilter(since=start)
        inbox.covered_since = start
        # A private stream ends its polls at its trigger's deadline; any poll ends within POLL_BUDGET.
        deadline = parse_timestamp(kwargs["timeout_at"]) if not shared and kwargs.get("timeout_at") else None
        failures = 0
        while True:
            budget = POLL_BUDGET
            if deadline is not None:
                budget = min(budget, max((deadline - datetime.now(timezone.utc)).total_seconds(), 0.0))
            try:
                scan = await asyncio.to_thread(
                    poll_replies, hook, flt, keep_all=True, stop_at=time.monotonic() + budget
                )
            except SmsError as err:
                failures += 1
                log.warning("polling %s's inbox failed, will try again: %s", conn_id, err)
                poll = InboxPoll(error=str(err), retryable=err.retryable, cause=err)
            except Exception as err:  # whatever a provider sends, the stream lives on
                failures += 1
                log.warning("polling %s's inbox failed (%s), will try again", conn_id, type(err).__name__)
                poll = InboxPoll(error=f"the poll failed ({type(err).__name__})", retryable=True)
            else:
                failures = 0
                flt = advance(flt, scan)
                poll = InboxPoll.of(inbox.keep(scan.all_matches))
            inbox.ready.set()
            if poll.messages or poll.error or not shared:  # waiters sleep through polls that bring nothing
                yield poll
            backoff = min(interval * 2 ** min(failures, 16), MAX_BACKOFF) if failures else 0.0
            await inbox.pause(interval, at_least=backoff)
    finally:
        if shared:
            if inbox._catching_up is not None:
                inbox._catching_up.cancel()
            Inbox.close(inbox)
