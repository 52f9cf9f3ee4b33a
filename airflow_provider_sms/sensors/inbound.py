"""``InboundSmsSensor``: wait for a matching inbound SMS (poke, reschedule or deferrable)."""

from __future__ import annotations

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
from airflow_provider_sms.core.inbound import compile_match


class InboundSmsSensor(BaseSensorOperator):
    """Wait until the provider has received a message that matches, and return it.

    :param sms_conn_id: a connection whose provider lists inbound messages (Cloudware, Cellcast). (templated)
    :param from_numbers: only messages from these numbers count; any form (``0400000001`` and
        ``+61400000001`` are the same sender). (templated)
    :param match: a regex searched in the text, or a list of keywords matched case-insensitively as
        whole words (``["YES", "Y"]``). An invalid regex fails at DAG parse. (templated)
    :param since: only messages received at or after this time count (aware datetime or ISO-8601);
        defaults to the DAG run's start, so replies from before the run never match. (templated)
    :param deferrable: wait in the triggerer (``InboundSmsTrigger``) instead of a worker slot.
    :param poke_interval: seconds between polls (default 60; at least 1, a shorter one is refused).

    Returns ``InboundMessage.to_dict()`` of the earliest matching reply (``PokeReturnValue`` in poke and
    reschedule modes, the trigger's event, without ``raw``, when deferred), so a downstream ``@task.branch``
    can read it.
    Each poll stops paging at the newest message already checked (poke mode and the trigger keep that
    cursor between polls; reschedule mode re-reads from ``since``), so polls read only what is new.
    """

    template_fields: Sequence[str] = ("sms_conn_id", "from_numbers", "match", "since")
    ui_color = "#d6e9f5"

    def __init__(
        self,
        *,
        sms_conn_id: str,
        from_numbers: Any = None,
        match: str | Sequence[str] | None = None,
        since: datetime | str | None = None,
        deferrable: bool = False,
        poke_interval: float | timedelta = 60,
        **kwargs: Any,
    ) -> None:
        from airflow_provider_sms.core.inbound import check_poll_interval

        seconds = poke_interval.total_seconds() if isinstance(poke_interval, timedelta) else poke_interval
        check_poll_interval(seconds, name="poke_interval")
        super().__init__(poke_interval=poke_interval, **kwargs)
        if isinstance(match, str) and "{{" not in match:
            compile_match(match)  # an invalid regex fails when the DAG is parsed, naming the pattern
        self.sms_conn_id = sms_conn_id
        self.from_numbers = from_numbers
        self.match = match
        self.since = since
        self.deferrable = deferrable
        self._filter: Any = None
        self._hook: Any = None

    def _since(self, context: Context) -> datetime:
        from airflow_provider_sms.core.timestamps import parse_timestamp

        if self.since:
            return parse_timestamp(self.since)
        dag_run = context.get("dag_run")
        start = getattr(dag_run, "start_date", None) or getattr(dag_run, "logical_date", None)
        return parse_timestamp(start) if start else datetime.now(timezone.utc)

    def _prepare(self, context: Context) -> None:
        """Check the connection and arguments once, at task start, with clear errors."""
        from airflow_provider_sms.core.inbound import build_filter
        from airflow_provider_sms.hooks import get_sms_hook

        try:
            hook = get_sms_hook(self.sms_conn_id)
            hook.check_lists_inbound()
            self._filter = build_filter(
                from_numbers=self.from_numbers,
                match=self.match,
                since=self._since(context),
                default_region=hook.default_region,
            )
        except SmsValidationError as err:
            raise AirflowFailException(str(err)) from err
        self._hook = hook

    def execute(self, context: Context) -> Any:
        self._prepare(context)
        if not self.deferrable:
            return super().execute(context)
        from airflow_provider_sms.triggers.inbound import InboundSmsTrigger

        since = self._filter.since.isoformat()
        timeout_at = (datetime.now(timezone.utc) + timedelta(seconds=float(self.timeout))).isoformat()
        self.defer(
            trigger=InboundSmsTrigger(
                self.sms_conn_id,
                from_numbers=sorted(self._filter.from_numbers) or None,
                match=self.match,
                since=since,
                poll_interval=self.poke_interval,
                timeout_at=timeout_at,
            ),
            method_name="execute_complete",
        )

    def poke(self, context: Context) -> PokeReturnValue | bool:
        from airflow_provider_sms.core.inbound import advance, poll_replies

        if self._filter is None:
            self._prepare(context)
        try:
            scan = poll_replies(self._hook, self._filter)
        except SmsError as err:
            if err.retryable:
                self.log.warning("could not list inbound messages this time: %s", err)
                return False
            raise AirflowFailException(str(err)) from err
        if scan.match is not None:
            self.log.info("matched a reply received at %s", scan.match.received_at.isoformat())
            return PokeReturnValue(is_done=True, xcom_value=scan.match.to_dict())
        self._filter = advance(self._filter, scan)
        return False

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        status = event.get("status")
        if status == "matched":
            from airflow_provider_sms.core.phone import mask_number

            message = event["message"]
            sender = mask_number(str(message.get("from_number", "")))
            self.log.info("matched a reply from %s received at %s", sender, message.get("received_at"))
            return message
        if status == "timeout":
            raise AirflowSensorTimeout(f"no matching SMS reply before {event.get('timeout_at')}")
        raise AirflowFailException(f"waiting for an SMS reply failed: {event.get('error', event)}")
