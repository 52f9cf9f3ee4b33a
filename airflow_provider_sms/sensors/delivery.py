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
        webhook. A message that failed over to a fallback connection is followed through the connection
        that accepted it (its accepted entry's ``conn_id``). (templated)
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
        self._hooks: dict[str, Any] = {}
        self._tracked: dict[str, Any] = {}
        self._known: dict[str, dict[str, Any]] = {}

    def _prepare(self) -> None:
        """Read the result and the connections once, at task start, with clear errors.

        Each message is followed through the connection that accepted it (``conn_id`` of its accepted
        entry): after a failover, the fallback's messages are asked of the fallback's provider.
        """
        from airflow_provider_sms.core.reports import connections_in, tracked_from
        from airflow_provider_sms.hooks import get_sms_hook

        result = self.result
        if isinstance(result, str):
            try:
                result = json.loads(result)
            except ValueError:
                raise AirflowFailException(
                    "result is text, not a send's XCom: pass send.output (or render templates as native objects)"
                ) from None
        hooks, tracked = {}, {}
        try:
            for conn_id in connections_in(result, self.sms_conn_id):
                hook = get_sms_hook(conn_id)
                part = tracked_from(
                    result, last_status=hook.last_delivery_status, conn_id=conn_id, default_conn_id=self.sms_conn_id
                )
                if part.by_id and part.provider != hook.provider:
                    raise AirflowFailException(
                        f"the send went through {part.provider}, but {conn_id!r} is a {hook.provider} connection"
                    )
                hooks[conn_id], tracked[conn_id] = hook, part
        except SmsValidationError as err:
            raise AirflowFailException(str(err)) from err
        untracked = sum(len(t.untracked) for t in tracked.values())
        if untracked:
            self.log.warning("%d recipient(s) were accepted without a message id and cannot be followed", untracked)
        self._hooks, self._tracked = hooks, tracked
        self._known = {conn_id: {} for conn_id in tracked}

    def _message_ids(self) -> dict[str, dict[str, str]]:
        return {conn_id: dict(t.by_id) for conn_id, t in self._tracked.items() if t.by_id}

    def execute(self, context: Context) -> Any:
        self._prepare()
        by_connection = self._message_ids()
        if not by_connection:
            self.log.info("nothing to follow: no accepted recipient has a message id")
            return self._finish({})
        if not self.deferrable:
            return super().execute(context)
        from airflow_provider_sms.triggers.delivery import SmsDeliveryTrigger

        timeout_at = (datetime.now(timezone.utc) + timedelta(seconds=float(self.timeout))).isoformat()
        primary = by_connection.pop(self.sms_conn_id, {})
        self.defer(
            trigger=SmsDeliveryTrigger(
                self.sms_conn_id,
                primary,
                poll_interval=self.poke_interval,
                timeout_at=timeout_at,
                by_connection=by_connection or None,
            ),
            method_name="execute_complete",
        )

    def poke(self, context: Context) -> PokeReturnValue | bool:
        from airflow_provider_sms.core.reports import pending, poll

        if not self._tracked:
            self._prepare()
        left = 0
        for conn_id, tracked in self._tracked.items():
            try:
                self._known[conn_id] = poll(self._hooks[conn_id], tracked, self._known.get(conn_id, {}))
            except SmsError as err:
                if err.retryable:
                    self.log.warning("could not read delivery reports from %s this time: %s", conn_id, err)
                    left += len(pending(tracked, self._known.get(conn_id, {})))
                    continue
                raise AirflowFailException(str(err)) from err
            left += len(pending(tracked, self._known[conn_id]))
        if left:
            total = sum(len(t.by_id) for t in self._tracked.values())
            self.log.info("%d of %d message(s) not settled yet", left, total)
            return False
        reports = {c: [r.to_dict() for r in known.values()] for c, known in self._known.items()}
        return PokeReturnValue(is_done=True, xcom_value=self._finish(reports))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        status = event.get("status")
        if status == "done":
            if not self._tracked:
                self._prepare()
            by_connection = event.get("by_connection")
            return self._finish(
                by_connection if by_connection is not None else {self.sms_conn_id: event.get("reports") or []}
            )
        if status == "timeout":
            raise AirflowSensorTimeout(f"some messages had no final delivery status by {event.get('timeout_at')}")
        raise AirflowFailException(f"reading delivery reports failed: {event.get('error', event)}")

    def _finish(self, reports: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        from airflow_provider_sms.core.phone import mask_number
        from airflow_provider_sms.core.reports import summary_of
        from airflow_provider_sms.core.results import DeliveryReport

        known = {c: {r["message_id"]: DeliveryReport.from_dict(r) for r in items} for c, items in reports.items()}
        primary = self._tracked.get(self.sms_conn_id)
        provider = primary.provider if primary is not None else next(iter(self._tracked.values())).provider
        outcome = summary_of(self._tracked, known, provider=provider)
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
