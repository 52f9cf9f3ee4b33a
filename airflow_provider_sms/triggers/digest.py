"""The digest trigger: texts each phone its held alerts when their group window closes, from the triggerer.

``SmsNotifier`` holds later alerts of a key (and those over ``max_per_hour`` or in quiet hours) in
``state.alerts``; a digest must go out when the window closes even if no alert ever comes again, and a
callback cannot wait for that. ``SmsAlertDigestTrigger`` runs in the triggerer for as long as the DAG
that watches it is active (an ``AssetWatcher``: ``example_dags/sms_alert_digests.py``): every
``poll_interval`` seconds, or sooner when a held alert falls due, it runs ``send_due_digests`` in a
worker thread (so its event loop never blocks), which claims and texts each due digest once however
many triggerers run it, and yields one event per round that texted someone (an asset event: the
watching DAG's run is the record). On Airflow 2.11, which has no ``AssetWatcher``, the same example
calls ``send_due_digests`` from a task every minute.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

from airflow_provider_sms._compat import AIRFLOW_V_3, BaseEventTrigger, BaseTrigger, TriggerEvent

_Base: Any = BaseEventTrigger if AIRFLOW_V_3 and BaseEventTrigger is not None else BaseTrigger


class SmsAlertDigestTrigger(_Base):  # type: ignore[misc]
    """Send due alert digests, forever; an event for each round that texted someone.

    :param poll_interval: seconds between looks at the held alerts (a digest goes out at most this
        long after its window closes; sooner when the trigger knows it is due).
    """

    def __init__(self, poll_interval: float = 30.0) -> None:
        super().__init__()
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {"poll_interval": self.poll_interval}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from asgiref.sync import sync_to_async

        while True:
            sent, next_due = await sync_to_async(self._round, thread_sensitive=False)()
            if sent:
                yield TriggerEvent({"sent_at": datetime.now(timezone.utc).isoformat(), "digests": sent})
            await asyncio.sleep(self._wait(next_due))

    @staticmethod
    def _round() -> tuple[list[dict[str, Any]], datetime | None]:
        from airflow_provider_sms.notifications.sms import alert_store, send_due_digests
        from airflow_provider_sms.state.alerts import AlertGroups

        try:
            store = alert_store()
            sent = send_due_digests(store)
            return sent, AlertGroups(store).next_due()
        except Exception as exc:  # the metadata database or the provider is away: next round
            import logging

            logging.getLogger(__name__).warning("alert digests not sent this round: %s", type(exc).__name__)
            return [], None

    def _wait(self, next_due: datetime | None) -> float:
        """Until the next held alert is due, within ``poll_interval`` (a due one held by the cap waits)."""
        if next_due is None:
            return self.poll_interval
        left = (next_due - datetime.now(timezone.utc)).total_seconds()
        return self.poll_interval if left <= 0 else min(self.poll_interval, max(left, 0.5))
