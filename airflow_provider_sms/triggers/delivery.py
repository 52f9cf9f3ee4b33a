"""``SmsDeliveryTrigger``: wait in the triggerer until every tracked message of a send has settled.

Backs ``SmsDeliverySensor(deferrable=True)``. Each poll asks the provider about the messages still
pending (``core.reports.poll``), in a worker thread, so the event loop only awaits. It fires once:
``{"status": "done", "reports": [...]}`` when every message settled, ``{"status": "timeout",
"reports": [...]}`` at ``timeout_at`` with what is known by then, or ``{"status": "error", "error"}``
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


class SmsDeliveryTrigger(BaseTrigger):  # type: ignore[misc]
    """Fire when every message in ``message_ids`` has settled, or at ``timeout_at``.

    :param sms_conn_id: the connection the messages were sent with.
    :param message_ids: provider message id -> recipient (E.164).
    :param poll_interval: seconds between polls.
    :param timeout_at: ISO-8601 time to stop waiting.
    :param reports: reports already read (``DeliveryReport.to_dict()``), carried across deferrals.
    """

    def __init__(
        self,
        sms_conn_id: str,
        message_ids: dict[str, str],
        *,
        poll_interval: float = 60.0,
        timeout_at: str,
        reports: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        self.sms_conn_id = sms_conn_id
        self.message_ids = dict(message_ids)
        self.poll_interval = float(poll_interval)
        self.timeout_at = timeout_at
        self.reports = list(reports or [])

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            "sms_conn_id": self.sms_conn_id,
            "message_ids": self.message_ids,
            "poll_interval": self.poll_interval,
            "timeout_at": self.timeout_at,
            "reports": self.reports,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from asgiref.sync import sync_to_async

        from airflow_provider_sms.core.reports import Tracked, pending, poll
        from airflow_provider_sms.core.timestamps import parse_timestamp
        from airflow_provider_sms.hooks import get_sms_hook

        deadline = parse_timestamp(self.timeout_at)
        try:
            hook = await sync_to_async(get_sms_hook)(self.sms_conn_id)
        except Exception as err:  # a missing or wrong connection: waiting cannot fix it
            yield TriggerEvent({"status": "error", "error": f"{self.sms_conn_id!r}: {err}"})
            return
        tracked = Tracked(hook.provider, self.message_ids, last_status=hook.last_delivery_status)
        known = {r["message_id"]: DeliveryReport.from_dict(r) for r in self.reports}
        while True:
            try:
                known = await asyncio.to_thread(poll, hook, tracked, known)
            except SmsError as err:
                if not err.retryable:
                    yield TriggerEvent({"status": "error", "error": str(err)})
                    return
                self.log.warning("could not read delivery reports this time: %s", err)
            dicts = [r.to_dict() for r in known.values()]
            left = pending(tracked, known)
            if not left:
                yield TriggerEvent({"status": "done", "reports": dicts})
                return
            remaining = (deadline - datetime.now(timezone.utc)).total_seconds()
            if remaining <= 0:
                yield TriggerEvent({"status": "timeout", "timeout_at": self.timeout_at, "reports": dicts})
                return
            self.log.info("%d of %d message(s) not settled yet", len(left), len(tracked.by_id))
            await asyncio.sleep(min(self.poll_interval, remaining))
