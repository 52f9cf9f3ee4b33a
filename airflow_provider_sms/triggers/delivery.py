"""``SmsDeliveryTrigger``: wait in the triggerer until every tracked message of a send has settled.

Backs ``SmsDeliverySensor(deferrable=True)``. Each poll asks the provider about the messages still
pending (``core.reports.poll``), in a worker thread, so the event loop only awaits. It fires once:
``{"status": "done", "reports": [...], "by_connection": {conn id: [...]}}`` when every message
settled (each message is asked of the connection that accepted it), ``{"status": "timeout", ...}``
at ``timeout_at`` with what is known by then, or ``{"status": "error", "error"}``
for a failure waiting cannot fix (authentication, a provider without a report API). Outages and rate
limits are logged and polled through.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

from airflow_provider_sms._compat import BaseTrigger, TriggerEvent
from airflow_provider_sms.core.errors import SmsError
from airflow_provider_sms.core.results import DeliveryReport
from airflow_provider_sms.triggers.inbound import SmsTriggerEvent


class SmsDeliveryTrigger(BaseTrigger):  # type: ignore[misc]
    """Fire when every message in ``message_ids`` has settled, or at ``timeout_at``.

    :param sms_conn_id: the connection the messages were sent with.
    :param message_ids: provider message id -> recipient (E.164), for messages ``sms_conn_id`` accepted.
    :param poll_interval: seconds between polls.
    :param timeout_at: ISO-8601 time to stop waiting.
    :param reports: reports already read (``DeliveryReport.to_dict()``) for ``sms_conn_id``, carried
        across deferrals.
    :param by_connection: the messages other connections accepted (a send that failed over):
        conn id -> {message id -> recipient}; each is asked of its own connection.
    """

    def __init__(
        self,
        sms_conn_id: str,
        message_ids: dict[str, str],
        *,
        poll_interval: float = 60.0,
        timeout_at: str,
        reports: list[dict[str, Any]] | None = None,
        by_connection: dict[str, dict[str, str]] | None = None,
    ) -> None:
        super().__init__()
        self.sms_conn_id = sms_conn_id
        self.message_ids = dict(message_ids)
        self.poll_interval = float(poll_interval)
        self.timeout_at = timeout_at
        self.reports = list(reports or [])
        self.by_connection = {str(c): dict(ids) for c, ids in (by_connection or {}).items() if c != sms_conn_id}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            "sms_conn_id": self.sms_conn_id,
            "message_ids": self.message_ids,
            "poll_interval": self.poll_interval,
            "timeout_at": self.timeout_at,
            "reports": self.reports,
            "by_connection": self.by_connection,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from asgiref.sync import sync_to_async

        from airflow_provider_sms.core.reports import Tracked, pending, poll
        from airflow_provider_sms.core.timestamps import parse_timestamp
        from airflow_provider_sms.hooks import get_sms_hook

        deadline = parse_timestamp(self.timeout_at)
        wanted = {self.sms_conn_id: self.message_ids, **self.by_connection}
        hooks: dict[str, Any] = {}
        tracked: dict[str, Tracked] = {}
        for conn_id, ids in wanted.items():
            if not ids and conn_id == self.sms_conn_id and self.by_connection:
                continue  # every message was accepted by a fallback
            try:
                hooks[conn_id] = await sync_to_async(get_sms_hook)(conn_id)
            except Exception as err:  # a missing or wrong connection: waiting cannot fix it
                yield SmsTriggerEvent({"status": "error", "error": f"{conn_id!r}: {err}"})
                return
            hook = hooks[conn_id]
            tracked[conn_id] = Tracked(hook.provider, ids, last_status=hook.last_delivery_status)
        known: dict[str, dict[str, DeliveryReport]] = {conn_id: {} for conn_id in tracked}
        if self.sms_conn_id in known:
            known[self.sms_conn_id] = {r["message_id"]: DeliveryReport.from_dict(r) for r in self.reports}
        while True:
            left = 0
            for conn_id, part in tracked.items():
                try:
                    known[conn_id] = await asyncio.to_thread(poll, hooks[conn_id], part, known[conn_id])
                except SmsError as err:
                    if not err.retryable:
                        yield SmsTriggerEvent({"status": "error", "error": f"{conn_id!r}: {err}"})
                        return
                    self.log.warning("could not read delivery reports from %s this time: %s", conn_id, err)
                left += len(pending(part, known[conn_id]))
            by_connection = {c: [r.to_dict() for r in k.values()] for c, k in known.items()}
            flat = [r for items in by_connection.values() for r in items]
            if not left:
                yield SmsTriggerEvent({"status": "done", "reports": flat, "by_connection": by_connection})
                return
            remaining = (deadline - datetime.now(timezone.utc)).total_seconds()
            if remaining <= 0:
                yield SmsTriggerEvent(
                    {
                        "status": "timeout",
                        "timeout_at": self.timeout_at,
                        "reports": flat,
                        "by_connection": by_connection,
                    }
                )
                return
            total = sum(len(t.by_id) for t in tracked.values())
            self.log.info("%d of %d message(s) not settled yet", left, total)
            await asyncio.sleep(min(self.poll_interval, remaining))
