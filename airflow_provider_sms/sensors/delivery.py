"""``SmsDeliverySensor``: wait until the recipients of a send have a final delivery status."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_sms._compat import (
    AirflowFailException,
    AirflowSensorTimeout,
    BaseSensorOperator,
    Context,
    PokeReturnValue,
)
from airflow_provider_sms.core.errors import SmsError, SmsValidationError


class SmsDeliverySensor(BaseSensorOperator):
    """Wait until every accepted recipient of a send has a final delivery status, and return the reports.

    :param sms_conn_id: the connection the send went through: Cellcast (one report call per message,
        paced under its 15 calls a second) or Cloudware (its ``message_sent`` records; Cloudware reports
        no further than ``sent``, so that ends the wait). Clickatell has no report API: use the status
        webhook. (templated)
    :param result: what the send returned: its XCom (``send.output``), a ``SendResult``, or a list of
        them from a mapped send. Dry runs are ignored. (templated)
    :param fail_on_undelivered: fail the task when any recipient ends ``failed``, ``expired``,
        ``rejected`` or ``unsubscribed`` (the error lists them, masked). Set False to get the reports
        either way and decide downstream.
    :param deferrable: wait in the triggerer (``SmsDeliveryTrigger``) instead of a worker slot.
    :param poke_interval: seconds between polls (default 60).

    Returns ``{"provider", "reports": [DeliveryReport.to_dict() per tracked recipient], "delivered",
    "undelivered", "sent", "pending", "untracked"}`` (numbers in E.164). Recipients accepted without a
    message id (Cellcast's chat API) cannot be followed: they are listed under ``untracked`` and not
    waited for. At the timeout the task fails as any sensor does (``soft_fail`` skips instead).
    """

    template_fields: Sequence[str] = ("sms_conn_id", "result")
    ui_color = "#e3f0d8"

    def __init__(
        self,
        *,
        sms_conn_id: str,
        result: Any,
        fail_on_undelivered: bool = True,
        deferrable: bool = False,
        poke_interval: float = 60,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.sms_conn_id = sms_conn_id
        self.result = result
        self.fail_on_undelivered = fail_on_undelivered
        self.deferrable = deferrable
        self._hook: Any = None
        self._tracked: Any = None
        self._known: dict[str, Any] = {}

    def _prepare(self) -> None:
        """Read the result and the connection once, at task start, with clear errors."""
        from airflow_provider_sms.core.reports import tracked_from
        from airflow_provider_sms.hooks import get_sms_hook

        result = self.result
        if isinstance(result, str):
            try:
                result = json.loads(result)
            except ValueError:
                raise AirflowFailException(
                    "result is text, not a send's XCom: pass send.output (or render templates as native objects)"
                ) from None
        try:
            hook = get_sms_hook(self.sms_conn_id)
            tracked = tracked_from(result, last_status=hook.last_delivery_status)
        except SmsValidationError as err:
            raise AirflowFailException(str(err)) from err
        if tracked.by_id and tracked.provider != hook.provider:
            raise AirflowFailException(
                f"the send went through {tracked.provider}, but {self.sms_conn_id!r} is a {hook.provider} connection"
            )
        if tracked.untracked:
            self.log.warning(
                "%d recipient(s) were accepted without a message id and cannot be followed", len(tracked.untracked)
            )
        self._hook, self._tracked = hook, tracked

    def execute(self, context: Context) -> Any:
        self._prepare()
        if not self._tracked.by_id:
            self.log.info("nothing to follow: no accepted recipient has a message id")
            return self._finish([])
        if not self.deferrable:
            return super().execute(context)
        from airflow_provider_sms.triggers.delivery import SmsDeliveryTrigger

        timeout_at = (datetime.now(timezone.utc) + timedelta(seconds=float(self.timeout))).isoformat()
        self.defer(
            trigger=SmsDeliveryTrigger(
                self.sms_conn_id, self._tracked.by_id, poll_interval=self.poke_interval, timeout_at=timeout_at
            ),
            method_name="execute_complete",
        )

    def poke(self, context: Context) -> PokeReturnValue | bool:
        from airflow_provider_sms.core.reports import pending, poll

        if self._tracked is None:
            self._prepare()
        try:
            self._known = poll(self._hook, self._tracked, self._known)
        except SmsError as err:
            if err.retryable:
                self.log.warning("could not read delivery reports this time: %s", err)
                return False
            raise AirflowFailException(str(err)) from err
        left = pending(self._tracked, self._known)
        if left:
            self.log.info("%d of %d message(s) not settled yet", len(left), len(self._tracked.by_id))
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish([r.to_dict() for r in self._known.values()]))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        status = event.get("status")
        if status == "done":
            if self._tracked is None:
                self._prepare()
            return self._finish(event.get("reports") or [])
        if status == "timeout":
            raise AirflowSensorTimeout(f"some messages had no final delivery status by {event.get('timeout_at')}")
        raise AirflowFailException(f"reading delivery reports failed: {event.get('error', event)}")

    def _finish(self, reports: list[dict[str, Any]]) -> dict[str, Any]:
        from airflow_provider_sms.core.phone import mask_number
        from airflow_provider_sms.core.reports import summary
        from airflow_provider_sms.core.results import DeliveryReport

        known = {r["message_id"]: DeliveryReport.from_dict(r) for r in reports}
        outcome = summary(self._tracked, known)
        self.log.info(
            "delivery: %d delivered, %d undelivered, %d sent, %d pending, %d untracked",
            *(len(outcome[k]) for k in ("delivered", "undelivered", "sent", "pending", "untracked")),
        )
        if self.fail_on_undelivered and outcome["undelivered"]:
            masked = ", ".join(mask_number(n) for n in outcome["undelivered"][:20])
            raise AirflowFailException(
                f"{len(outcome['undelivered'])} recipient(s) did not get the message: {masked} "
                "(set fail_on_undelivered=False to receive the reports instead)"
            )
        return outcome
