"""``SendSmsOperator``: the provider-neutral send, with failover, personalized messages and dry runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from functools import cache, partial
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_sms._compat import Context
from airflow_provider_sms.core.errors import SmsError, SmsUnsupportedFeatureError, SmsValidationError
from airflow_provider_sms.core.templated import list_from_template
from airflow_provider_sms.operators.base import SmsBaseOperator, TimedSender

if TYPE_CHECKING:
    from airflow_provider_sms.core.results import SendResult


class SendSmsOperator(SmsBaseOperator):
    """Send an SMS through whichever provider ``sms_conn_id`` is (Cellcast, Clickatell or Cloudware).

    :param sms_conn_id: the connection; its type picks the hook. (templated)
    :param to: recipients: a list, a comma-separated string, or an XCom list. (templated)
    :param message: the text, or a path to a ``.txt`` template. (templated)
    :param messages: personalized sends instead of ``to``/``message``: a list of
        ``{"to": ..., "message": ...}`` (or ``(to, message)`` rows, e.g. from a SQL task), each with an
        optional ``"tz"`` (an IANA zone for ``local_time`` and ``quiet_hours``). Identical texts are
        grouped into provider batches; the groups go out over a bounded pool. (templated)
    :param sender: sender ID; defaults to the connection's ``sender``. (templated)
    :param send_at: when the provider should deliver: an aware datetime, an ISO-8601 string with an
        offset, or a ``timedelta`` from when the task runs (Cellcast and Clickatell; Cloudware cannot
        schedule and fails the task before sending). (templated)
    :param local_time: ``"09:00"``: deliver at the next 09:00 in each recipient's own time zone (from
        the row's ``tz``, the number, or ``default_tz``; see ``core.localtime``). Cellcast and Clickatell
        hold the messages; with Cloudware the task defers until each group is due. Not with ``send_at``.
    :param quiet_hours: ``("21:00", "08:00")``: a recipient whose local time is inside the window is
        held until it ends; the others go now (or at ``local_time``). Off by default.
    :param default_tz: the zone for numbers with several zones (most Australian mobiles) or none.
    :param fallback_conn_ids: connections to try, in order, for recipients the previous provider did
        not process (auth, credit, outage after retries, a country it does not serve). Nobody is sent
        to twice. (templated)
    :param dry_run: send nothing; return the plan: per message the recipients, the rejected numbers,
        encoding, SMS parts and requests, exactly as the send would make them (with ``local_time`` or
        ``quiet_hours``: the groups, each recipient's zone and delivery time).
    :param fail_on_rejected: fail after pushing the result when anyone was rejected or unsubscribed.
    :param max_workers: concurrent requests for per-recipient providers and personalized groups.

    :param resend_in_doubt: on a retry, resend to recipients whose request may have gone out without
        an answer; off by default (they are reported ``in_doubt``).

    Retries: every try records who each provider accepted in the task's send ledger (the task state
    store on Airflow 3.3+, Variables before), so a retry, or a clear of the task, sends only to
    recipients no earlier try got accepted for and returns one result for all tries. Outages and rate
    limits are left to Airflow's ``retries``; bad input, auth, credit, rejections and recipients in
    doubt fail the task without retry. To send again on purpose, start a new DAG run.
    """

    template_fields: Sequence[str] = (
        "sms_conn_id",
        "to",
        "message",
        "messages",
        "sender",
        "send_at",
        "fallback_conn_ids",
    )
    template_ext: Sequence[str] = (".txt",)
    template_fields_renderers: ClassVar[dict[str, str]] = {"messages": "json"}

    def __init__(
        self,
        *,
        sms_conn_id: str,
        to: Any = None,
        message: str | None = None,
        messages: Any = None,
        sender: str | None = None,
        send_at: datetime | str | timedelta | None = None,
        local_time: str | time | None = None,
        default_tz: str | None = None,
        fallback_conn_ids: Sequence[str] = (),
        dry_run: bool = False,
        max_workers: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if messages is None and (to is None or message is None):
            raise SmsValidationError(f"{self.task_id}: give `to` and `message`, or `messages`")
        if messages is not None and (to is not None or message is not None):
            raise SmsValidationError(f"{self.task_id}: give either `to`/`message` or `messages`, not both")
        from airflow_provider_sms.core.localtime import check_zone, parse_clock

        if send_at is not None and (local_time is not None or self.quiet_hours is not None):
            raise SmsValidationError(
                f"{self.task_id}: send_at fixes one delivery time; local_time and quiet_hours set it per recipient. "
                "Use one or the other"
            )
        self.local_time = parse_clock(local_time, "local_time") if local_time is not None else None
        self.default_tz = check_zone(default_tz) if default_tz else None
        quiet = self.quiet_hours
        if (
            self.local_time is not None
            and quiet is not None
            and quiet.contains(datetime.combine(date.today(), self.local_time))
        ):
            raise SmsValidationError(
                f"{self.task_id}: local_time {self.local_time:%H:%M} is inside the quiet hours {quiet}"
            )
        self.sms_conn_id = sms_conn_id
        self.to = to
        self.message = message
        self.messages = messages
        self.sender = sender
        self.send_at = send_at
        self.fallback_conn_ids = fallback_conn_ids
        self.is_dry_run = dry_run  # BaseOperator already has a dry_run() method
        self.max_workers = max_workers

    def _groups(self) -> dict[str, list[str]]:
        from airflow_provider_sms.core.delivery import group_messages
        from airflow_provider_sms.core.phone import split_recipients

        if self.messages is not None:
            return group_messages(list_from_template(self.messages))
        return {str(self.message): split_recipients(list_from_template(self.to))}

    @property
    def hook_kwargs(self) -> dict[str, Any]:
        kwargs = super().hook_kwargs
        if self.max_workers:
            kwargs["max_workers"] = self.max_workers
        return kwargs

    def _conn_ids(self) -> list[str]:
        """The primary connection, then the fallbacks in order."""
        return [self.sms_conn_id, *(str(c) for c in (list_from_template(self.fallback_conn_ids) or []))]

    def _hooks(self) -> list[Callable[[], Any]]:
        """Factories for the primary hook and each fallback (``_conn_ids``), each built once, when first needed."""
        from airflow_provider_sms.hooks import get_sms_hook

        return [cache(partial(get_sms_hook, conn_id, **self.hook_kwargs)) for conn_id in self._conn_ids()]

    def timed_sender(self) -> TimedSender:
        from airflow_provider_sms.core.delivery import send_with_failover

        factories = self._hooks()
        primary = factories[0]()
        schedules = all(make().supports_send_at for make in factories) if primary.supports_send_at else False

        def send(to: list[str], text: str, send_at: datetime | None) -> SendResult:
            return send_with_failover(factories, to, text, sender=self.sender, send_at=send_at)

        return TimedSender(primary.provider, primary.default_region, schedules, send)

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_sms.core.delivery import (
            combine,
            message_rows,
            send_grouped,
            send_once,
            send_with_failover,
        )

        if self.local_time is not None or self.quiet_hours is not None:
            from airflow_provider_sms.core.phone import split_recipients

            try:
                if self.messages is not None:
                    rows = message_rows(list_from_template(self.messages))
                else:
                    rows = [(n, str(self.message), None) for n in split_recipients(list_from_template(self.to))]
            except SmsError as err:
                raise self.failure(err) from err
            return self.send_timed(
                context, rows, local_time=self.local_time, default_tz=self.default_tz, dry_run=self.is_dry_run
            )
        send_at = self.send_at or None

        def send(to: list[str], text: str, *, dry_run: bool = False) -> SendResult:
            def through(numbers: list[str]) -> SendResult:
                return send_with_failover(
                    factories, numbers, text, sender=self.sender, send_at=send_at, dry_run=dry_run
                )

            if dry_run or ledger is None:
                return through(to)
            return send_once(
                ledger,
                to,
                text,
                through,
                provider=primary.provider,
                region=primary.default_region,
                resend_in_doubt=self.resend_in_doubt,
                confirm=self.confirm_sent,
            )

        ledger = None if self.is_dry_run else self.send_ledger(context)
        try:
            groups = self._groups()
            factories = self._hooks()
            primary = factories[0]()
            for conn_id, make_hook in zip(self._conn_ids()[1:], factories[1:], strict=True):
                if self.validity is not None:
                    self._check_validity(conn_id, make_hook())
                if send_at is not None and not make_hook().supports_send_at:  # built once, only here
                    raise SmsUnsupportedFeatureError(
                        f"fallback connection {conn_id!r} cannot schedule a message, so it cannot take this "
                        "send_at send; drop it from fallback_conn_ids or use a Cellcast or Clickatell connection"
                    )
            if self.is_dry_run or len(groups) > 1:
                # Every group is checked the way it will be sent before any is sent, so one bad text
                # cannot fail the task after other groups already went out.
                plans = send_grouped(groups, partial(send, dry_run=True), max_workers=1)
                if self.max_parts is not None or self.max_cost is not None:
                    self._check_caps(plans)
        except SmsError as err:
            raise self.failure(err) from err
        if self.is_dry_run:
            return self._report_plan(primary.provider, plans)
        if len(groups) == 1:
            ((text, to),) = groups.items()
            return self.deliver(context, lambda: send(to, text))
        workers = self.max_workers or primary.max_workers
        return self.deliver(context, lambda: combine(send_grouped(groups, send, max_workers=workers), primary.provider))

    @staticmethod
    def _check_validity(conn_id: str, hook: Any) -> None:
        from airflow_provider_sms.core.safeguards import check_validity

        try:
            check_validity(hook.policy, hook.provider, hook.hook_name)
        except SmsUnsupportedFeatureError as err:
            raise SmsUnsupportedFeatureError(
                f"fallback connection {conn_id!r}: {err.message}; or drop it from fallback_conn_ids"
            ) from None

    def check_whole_send(self, groups: list[tuple[list[str], str]]) -> None:
        if self.max_parts is None and self.max_cost is None:
            return
        primary = self._hooks()[0]()
        self._check_caps([primary.send_sms(to, text, sender=self.sender, dry_run=True) for to, text in groups])

    def _check_caps(self, plans: list[SendResult]) -> None:
        """The caps hold for the whole send: every personalized message together, not each alone."""
        from airflow_provider_sms.core.cost import check_caps, combined, enforce_caps

        parts, cost = check_caps(self.max_parts, self.max_cost)
        total = combined([plan.estimate for plan in plans])
        enforce_caps(total, parts, cost, conn_id=self.sms_conn_id, what=f"this send of {len(plans)} messages")

    def _report_plan(self, provider: str, plans: list[SendResult]) -> dict[str, Any]:
        messages = [
            {
                "recipients": [a["to"] for a in plan.accepted],
                "rejected": [dict(r) for r in plan.rejected],
                "encoding": plan.encoding,
                "segments_per_message": plan.segments // len(plan.accepted) if plan.accepted else 0,
                "segments": plan.segments,
                "requests": plan.requests,
                "estimate": plan.estimate,
            }
            for plan in plans
        ]
        total = sum(plan.segments for plan in plans)
        count = sum(len(plan.accepted) for plan in plans)
        requests = sum(plan.requests for plan in plans)
        self.log.info(
            "dry run: would send %d SMS part(s) to %d recipient(s) in %d request(s); nothing sent",
            total,
            count,
            requests,
        )
        return {
            "dry_run": True,
            "provider": provider,
            "messages": messages,
            "total_segments": total,
            "total_cost": _combined_cost(plans),
            "requests": requests,
        }


def _combined_cost(plans: list[SendResult]) -> float | None:
    """The estimated cost of every message of a dry run, None where one cannot be priced."""
    from airflow_provider_sms.core.cost import combined

    cost = combined([plan.estimate for plan in plans]).total_cost
    return None if cost is None else round(float(cost), 6)
