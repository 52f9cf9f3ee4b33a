"""Triggers that wait for inbound SMS without blocking the triggerer's event loop.

``InboundSmsTrigger`` backs ``InboundSmsSensor(deferrable=True)``: it fires once, with the matched
message or a timeout. ``InboundSmsEventTrigger`` (Airflow 3) backs an ``AssetWatcher``: it fires once
per new matching message, and each event's payload (``{"message": InboundMessage.to_dict()}``) becomes
the asset event's ``extra["payload"]``.

Both read their inbox as a stream of polls (``triggers.inbox``). On Airflow 3.3 and later they declare a
shared-stream key (the connection), so the triggerer runs one poll per inbox for every trigger waiting
on it; elsewhere ``run()`` opens a private stream of the same kind, so the waiting logic is the same
code either way. Connection lookups, building a filter (phone-number parsing) and HTTP polls run in a
worker thread, so the event loop only ever awaits. ``poll_interval`` below ``MIN_POLL_INTERVAL`` (1 s) is
refused when a trigger is built.

Airflow's triggerer logs every event it fires ("Trigger fired event", at INFO) as the event's ``repr``.
Events here are ``SmsTriggerEvent``: the payload is what the task or asset event needs (never the
provider's raw item), and the ``repr`` that lands in that log line shows numbers masked and a message's
text only as its length.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Collection, Hashable, Sequence
from datetime import datetime, timezone
from typing import Any

from airflow_provider_sms._compat import AIRFLOW_V_3, BaseEventTrigger, BaseTrigger, TriggerEvent
from airflow_provider_sms.core.errors import SmsError
from airflow_provider_sms.core.inbound import InboundFilter, build_filter, check_poll_interval, compile_match
from airflow_provider_sms.core.phone import mask_number
from airflow_provider_sms.core.results import InboundMessage
from airflow_provider_sms.core.timestamps import parse_timestamp
from airflow_provider_sms.triggers.inbox import Inbox, InboxPoll, open_inbox_stream, stream_key

_NUMBER_KEYS = frozenset({"from_number", "to_number", "to", "phone"})
_TEXT_KEYS = frozenset({"text"})


def _quiet(value: Any) -> Any:
    """A payload as it may appear in a log line: numbers masked, text as its length, no raw items."""
    if isinstance(value, dict):
        shown: dict[str, Any] = {}
        for key, item in value.items():
            if key == "raw":
                continue
            if key in _NUMBER_KEYS and isinstance(item, str):
                shown[key] = mask_number(item)
            elif key in _TEXT_KEYS and isinstance(item, str):
                shown[key] = f"<{len(item)} chars>"
            else:
                shown[key] = _quiet(item)
        return shown
    if isinstance(value, (list, tuple)):
        return [_quiet(item) for item in value]
    return value


class SmsTriggerEvent(TriggerEvent):  # type: ignore[misc]
    """A ``TriggerEvent`` whose ``repr`` (what the triggerer logs) keeps personal data out."""

    def __init__(self, payload: Any, **kwargs: Any) -> None:
        super().__init__(payload, **kwargs)

    def __repr__(self) -> str:
        return f"TriggerEvent<{_quiet(self.payload)!r}>"

    def __structlog__(self) -> str:
        return repr(self)


def event_message(message: InboundMessage) -> dict[str, Any]:
    """A message as an event carries it: ``InboundMessage.to_dict()`` without the provider's raw item."""
    data = message.to_dict()
    data.pop("raw", None)
    return data


_E164 = re.compile(r"\+[1-9]\d{6,14}")


async def filter_for(
    *,
    from_numbers: Any = None,
    match: Any = None,
    since: Any = None,
    default_region: str | None = None,
) -> InboundFilter:
    """The trigger's filter, without blocking the triggerer's loop.

    A trigger's numbers were normalized by the sensor or operator that deferred (E.164), so they are
    used as they are: parsing a thousand numbers with ``phonenumbers`` (0.2 ms each) would stall the
    loop when a thousand waiters resume together. Numbers in any other form are parsed in a thread.
    """
    numbers = list(from_numbers or [])
    if all(isinstance(n, str) and _E164.fullmatch(n) for n in numbers):
        start = parse_timestamp(since).replace(microsecond=0) if since else None
        return InboundFilter(from_numbers=frozenset(numbers), pattern=compile_match(match), since=start)
    return await asyncio.to_thread(
        build_filter, from_numbers=from_numbers, match=match, since=since, default_region=default_region
    )


class FiredIds:
    """The ids of the messages an event trigger already fired for, so none fires twice (bounded, oldest out)."""

    def __init__(self, limit: int = 10_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._limit = limit

    def add(self, message_id: str) -> bool:
        """Remember ``message_id``; False when it was already there."""
        if message_id in self._ids:
            return False
        self._ids[message_id] = None
        if len(self._ids) > self._limit:
            self._ids.popitem(last=False)
        return True


_Base: Any = BaseEventTrigger if AIRFLOW_V_3 and BaseEventTrigger is not None else BaseTrigger


class InboxWaiter(_Base):  # type: ignore[misc]
    """What every trigger waiting on an inbox shares: its JSON-safe arguments, the shared-stream hooks
    (Airflow 3.3), a private stream otherwise, and reading polls. A subclass implements ``_wait``."""

    def _set_filter_args(
        self,
        sms_conn_id: str,
        from_numbers: Sequence[str] | None,
        match: str | Sequence[str] | None,
        poll_interval: float,
    ) -> None:
        self.sms_conn_id = sms_conn_id
        self.from_numbers = list(from_numbers) if from_numbers else None
        self.match = match if isinstance(match, str) or match is None else list(match)
        self.poll_interval = check_poll_interval(poll_interval)

    def _filter_args(self) -> dict[str, Any]:
        return {
            "sms_conn_id": self.sms_conn_id,
            "from_numbers": self.from_numbers,
            "match": self.match,
            "poll_interval": self.poll_interval,
        }

    def _classpath(self) -> str:
        return f"{type(self).__module__}.{type(self).__qualname__}"

    # --- Airflow 3.3 shared streams: one poll per connection, whatever each waiter filters ---------

    def shared_stream_key(self) -> Hashable | None:
        return stream_key(self.sms_conn_id)

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[InboxPoll]:
        async for poll in open_inbox_stream(kwargs):
            yield poll

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        inbox = Inbox.for_connection(self.sms_conn_id)
        inbox.join(self.poll_interval)
        try:
            async for event in self._wait(shared_stream, inbox, shared=True):
                yield event
        finally:
            inbox.leave(self.poll_interval)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait on a private stream: what the triggerer calls when it does not share streams."""
        inbox = Inbox(self.sms_conn_id)
        _, kwargs = self.serialize()
        async for event in self._wait(open_inbox_stream(kwargs, inbox=inbox), inbox, shared=False):
            yield event

    def _wait(self, polls: AsyncIterator[InboxPoll], inbox: Inbox, *, shared: bool) -> AsyncIterator[TriggerEvent]:
        raise NotImplementedError

    @staticmethod
    def _left(deadline: datetime | None) -> float | None:
        """Seconds until ``deadline`` (never negative), or None without one."""
        return None if deadline is None else max((deadline - datetime.now(timezone.utc)).total_seconds(), 0.0)

    async def _first(self, polls: AsyncIterator[InboxPoll], inbox: Inbox, left: float | None, *, shared: bool) -> bool:
        """Wait (up to ``left`` seconds) until the inbox has been read once; False on timeout.

        A private stream is driven by its one reader, so its first poll is pulled; a shared one runs on
        its own task and says when it has read the inbox.
        """
        first = inbox.ready.wait() if shared else polls.__anext__()
        try:
            await (asyncio.wait_for(first, left) if left is not None else first)
        except asyncio.TimeoutError:
            return False
        return True

    async def _next_poll(self, polls: AsyncIterator[InboxPoll], timeout: float | None) -> InboxPoll | None:
        """The next poll, or None when ``timeout`` seconds pass first.

        The pending read is kept for the next call rather than cancelled: cancelling it would close
        the stream for good.
        """
        pending: asyncio.Future[InboxPoll] = self.__dict__.pop("_pending_poll", None) or asyncio.ensure_future(
            polls.__anext__()
        )
        done, _ = await asyncio.wait({pending}, timeout=timeout)
        if not done:
            self.__dict__["_pending_poll"] = pending
            return None
        return pending.result()

    async def _read_back(
        self, inbox: Inbox, since: datetime | None, senders: Collection[str]
    ) -> list[InboundMessage] | None:
        """The messages since ``since`` from ``senders`` (read back if the inbox does not reach that far);
        None when the read failed this time and should be tried again."""
        if since is None or inbox.covers(since):
            return inbox.kept_since(since, senders)
        try:
            return await inbox.read_back(since, senders)
        except SmsError as err:
            if not err.retryable:
                raise
            self.log.warning("catching up on %s's inbox failed, will try again: %s", self.sms_conn_id, err)
            return None


class InboundSmsTrigger(InboxWaiter):
    """Wait until ``sms_conn_id``'s inbox holds a matching message, or until ``timeout_at``.

    :param sms_conn_id: a connection whose hook lists inbound messages (Cellcast, Cloudware).
    :param from_numbers: only replies from these numbers count.
    :param match: a regex, or keywords matched case-insensitively as whole words.
    :param since: ISO-8601 time; only messages received at or after it count.
    :param poll_interval: seconds between polls (a shared poll runs at the shortest interval among the
        triggers waiting on it).
    :param timeout_at: ISO-8601 time after which the trigger fires ``{"status": "timeout"}``.

    Events: ``{"status": "matched", "message": {...}}`` with the earliest matching reply,
    ``{"status": "timeout", ...}``, or ``{"status": "error", "error": "..."}`` for failures that waiting
    cannot fix (auth, bad input). Outages are logged and polled through until the timeout.
    """

    def __init__(
        self,
        sms_conn_id: str,
        *,
        from_numbers: Sequence[str] | None = None,
        match: str | Sequence[str] | None = None,
        since: str | None = None,
        poll_interval: float = 60.0,
        timeout_at: str | None = None,
    ) -> None:
        super().__init__()
        self._set_filter_args(sms_conn_id, from_numbers, match, poll_interval)
        self.since = since
        self.timeout_at = timeout_at

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return self._classpath(), {**self._filter_args(), "since": self.since, "timeout_at": self.timeout_at}

    def _timeout(self) -> TriggerEvent:
        return SmsTriggerEvent({"status": "timeout", "timeout_at": self.timeout_at})

    async def _wait(
        self, polls: AsyncIterator[InboxPoll], inbox: Inbox, *, shared: bool
    ) -> AsyncIterator[TriggerEvent]:
        deadline = parse_timestamp(self.timeout_at) if self.timeout_at else None
        if not await self._first(polls, inbox, self._left(deadline), shared=shared):
            yield self._timeout()
            return
        try:
            if inbox.failure is not None:
                raise inbox.failure
            flt = await filter_for(
                from_numbers=self.from_numbers, match=self.match, since=self.since, default_region=inbox.region
            )
            earlier = await self._read_back(inbox, flt.since, flt.from_numbers)
        except SmsError as err:
            yield SmsTriggerEvent({"status": "error", "error": str(err)})
            return
        candidates = earlier or []
        while True:
            match = min((m for m in candidates if flt.matches(m)), key=lambda m: m.received_at, default=None)
            if match is not None:
                yield SmsTriggerEvent({"status": "matched", "message": event_message(match)})
                return
            left = self._left(deadline)
            if left == 0.0:
                yield self._timeout()
                return
            try:
                poll = await (asyncio.wait_for(polls.__anext__(), left) if left is not None else polls.__anext__())
            except asyncio.TimeoutError:
                yield self._timeout()
                return
            if poll.error and not poll.retryable:
                yield SmsTriggerEvent({"status": "error", "error": poll.error})
                return
            candidates = poll.from_any(flt.from_numbers)
            if earlier is None:  # the catch-up read failed last time: try again
                try:
                    earlier = await self._read_back(inbox, flt.since, flt.from_numbers)
                except SmsError as err:
                    yield SmsTriggerEvent({"status": "error", "error": str(err)})
                    return
                candidates += earlier or []


class InboundSmsEventTrigger(InboxWaiter):
    """Fire one event per new matching inbound message, for DAGs scheduled on an ``Asset`` (Airflow 3).

    .. code-block:: python

        trigger = InboundSmsEventTrigger(sms_conn_id="cloudware_default", match=["YES", "NO"])
        replies = Asset("sms_replies", watchers=[AssetWatcher(name="sms_replies", trigger=trigger)])

    Guarantee: each message fires once. The trigger counts messages received from when it starts and
    remembers the ids it fired for (also across a shared stream's replays), so no message fires twice;
    the price is that replies arriving while no triggerer runs this trigger are not replayed.
    Transient provider failures are logged and polled through.

    :param sms_conn_id: a connection whose hook lists inbound messages (Cellcast, Cloudware).
    :param from_numbers: only messages from these numbers count.
    :param match: a regex, or keywords matched case-insensitively as whole words.
    :param poll_interval: seconds between polls.
    """

    def __init__(
        self,
        sms_conn_id: str,
        *,
        from_numbers: Sequence[str] | None = None,
        match: str | Sequence[str] | None = None,
        poll_interval: float = 60.0,
    ) -> None:
        if not AIRFLOW_V_3 or BaseEventTrigger is None:
            raise RuntimeError(
                "InboundSmsEventTrigger needs Airflow 3 (AssetWatcher); on Airflow 2.11 use InboundSmsSensor"
            )
        super().__init__()
        self._set_filter_args(sms_conn_id, from_numbers, match, poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return self._classpath(), self._filter_args()

    async def _wait(
        self, polls: AsyncIterator[InboxPoll], inbox: Inbox, *, shared: bool
    ) -> AsyncIterator[TriggerEvent]:
        started = datetime.now(timezone.utc)
        await self._first(polls, inbox, None, shared=shared)
        if inbox.failure is not None:
            raise inbox.failure  # the watcher cannot work: fail it loudly, as Airflow shows trigger errors
        flt = await filter_for(
            from_numbers=self.from_numbers, match=self.match, since=started, default_region=inbox.region
        )
        fired = FiredIds()
        candidates = inbox.kept_since(flt.since, flt.from_numbers)
        while True:
            for message in candidates:
                if flt.matches(message) and fired.add(message.message_id):
                    yield SmsTriggerEvent({"message": event_message(message)})
            poll = await polls.__anext__()
            if poll.error and not poll.retryable:
                # The sensor's policy: what waiting cannot fix (401/403, a bad connection) fails loudly.
                raise poll.cause or SmsError(poll.error)
            if poll.error:
                self.log.debug("the inbox poll failed, will try again: %s", poll.error)
            candidates = poll.from_any(flt.from_numbers)
