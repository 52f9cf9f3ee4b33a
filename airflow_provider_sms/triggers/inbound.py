"""Triggers that poll a provider's inbound listing without blocking the triggerer's event loop.

``InboundSmsTrigger`` backs ``InboundSmsSensor(deferrable=True)``: it fires once, with the matched
message or a timeout. ``InboundSmsEventTrigger`` (Airflow 3) backs an ``AssetWatcher``: it fires once per
new matching message, and each event's payload (``{"message": InboundMessage.to_dict()}``) becomes the
asset event's ``extra["payload"]``. Connection lookups go through ``sync_to_async`` and HTTP polls run in
a worker thread, so the event loop only ever awaits.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timezone
from typing import Any

from airflow_provider_sms._compat import AIRFLOW_V_3, BaseEventTrigger, BaseTrigger, TriggerEvent
from airflow_provider_sms.core.errors import SmsError


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


async def _hook_and_filter(
    sms_conn_id: str, from_numbers: Any, match: Any, since: datetime | str | None
) -> tuple[Any, Any]:
    from asgiref.sync import sync_to_async

    from airflow_provider_sms.core.inbound import build_filter
    from airflow_provider_sms.hooks import get_sms_hook

    hook = await sync_to_async(get_sms_hook)(sms_conn_id)
    return hook, build_filter(from_numbers=from_numbers, match=match, since=since, default_region=hook.default_region)


class _InboundFilterArgs:
    """The arguments both triggers share, kept JSON-safe for ``serialize()``."""

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
        self.poll_interval = float(poll_interval)

    def _filter_args(self) -> dict[str, Any]:
        return {
            "sms_conn_id": self.sms_conn_id,
            "from_numbers": self.from_numbers,
            "match": self.match,
            "poll_interval": self.poll_interval,
        }

    def _classpath(self) -> str:
        return f"{type(self).__module__}.{type(self).__qualname__}"


class InboundSmsTrigger(_InboundFilterArgs, BaseTrigger):
    """Poll ``sms_conn_id``'s inbound messages until one matches, or until ``timeout_at``.

    :param sms_conn_id: a connection whose hook lists inbound messages (Cellcast, Cloudware).
    :param from_numbers: only replies from these numbers count.
    :param match: a regex, or keywords matched case-insensitively as whole words.
    :param since: ISO-8601 time; only messages received at or after it count.
    :param poll_interval: seconds between polls.
    :param timeout_at: ISO-8601 time after which the trigger fires ``{"status": "timeout"}``.

    Events: ``{"status": "matched", "message": {...}}``, ``{"status": "timeout", ...}`` or
    ``{"status": "error", "error": "..."}`` for failures that waiting cannot fix (auth, bad input).
    Outages are logged and polled through until the timeout.
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

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_sms.core.inbound import advance, poll_replies
        from airflow_provider_sms.core.timestamps import parse_timestamp

        deadline = parse_timestamp(self.timeout_at) if self.timeout_at else None
        try:
            hook, flt = await _hook_and_filter(self.sms_conn_id, self.from_numbers, self.match, self.since)
        except SmsError as err:
            yield TriggerEvent({"status": "error", "error": str(err)})
            return
        while True:
            left = None if deadline is None else (deadline - datetime.now(timezone.utc)).total_seconds()
            try:
                # The deadline holds even mid-poll: paging stops at it, and the wait is cut off there.
                stop_at = None if left is None else time.monotonic() + max(left, 0.0)
                poll = asyncio.to_thread(poll_replies, hook, flt, stop_at=stop_at)
                scan = await (poll if left is None else asyncio.wait_for(poll, timeout=max(left, 0.0) + 1.0))
            except SmsError as err:
                if not err.retryable:
                    yield TriggerEvent({"status": "error", "error": str(err)})
                    return
                self.log.warning("polling for inbound SMS failed, will try again: %s", err)
            except asyncio.TimeoutError:
                self.log.warning("a poll was still running at the deadline; giving up on it")
            else:
                if scan.match is not None:
                    yield TriggerEvent({"status": "matched", "message": scan.match.to_dict()})
                    return
                flt = advance(flt, scan)
            now = datetime.now(timezone.utc)
            if deadline is not None and now >= deadline:
                yield TriggerEvent({"status": "timeout", "timeout_at": self.timeout_at})
                return
            wait = self.poll_interval if deadline is None else min(self.poll_interval, (deadline - now).total_seconds())
            await asyncio.sleep(max(wait, 0.0))


if AIRFLOW_V_3 and BaseEventTrigger is not None:
    _EventTriggerBase: Any = BaseEventTrigger
else:
    _EventTriggerBase = BaseTrigger


class InboundSmsEventTrigger(_InboundFilterArgs, _EventTriggerBase):  # type: ignore[misc]
    """Fire one event per new matching inbound message, for DAGs scheduled on an ``Asset`` (Airflow 3).

    .. code-block:: python

        trigger = InboundSmsEventTrigger(sms_conn_id="cloudware_default", match=["YES", "NO"])
        replies = Asset("sms_replies", watchers=[AssetWatcher(name="sms_replies", trigger=trigger)])

    Guarantee: the cursor starts when the trigger starts and moves past every message it has fired
    for, skipping ids already seen at the boundary, so no message fires twice, not even after a
    triggerer restart. The price: replies that arrive while no triggerer runs this trigger are not
    replayed. Transient provider failures are logged and polled through.

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

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_sms.core.inbound import advance, poll_replies

        started = datetime.now(timezone.utc)
        hook, flt = await _hook_and_filter(self.sms_conn_id, self.from_numbers, self.match, started)
        fired = FiredIds()
        while True:
            try:
                scan = await asyncio.to_thread(poll_replies, hook, flt, keep_all=True)
            except SmsError as err:
                self.log.warning("polling for inbound SMS failed, will try again: %s", err)
            else:
                for message in scan.all_matches:
                    if fired.add(message.message_id):
                        yield TriggerEvent({"message": message.to_dict()})
                flt = advance(flt, scan)
            await asyncio.sleep(self.poll_interval)
