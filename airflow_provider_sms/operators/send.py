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
    :param deliver_within: a ``timedelta``: when the provider's delivery report does not say
        ``delivered`` in time (failed, expired, or no report), the text goes through the next
        connection of ``fallback_conn_ids``, then to the next contact of ``escalation``; never again to
        a recipient whose text was delivered. The task waits deferred (``DeliveryFallbackTrigger``)
        and sends each step itself, once, through the send ledger. Not with ``messages``,
        ``send_at``, ``local_time`` or ``quiet_hours``.
    :param escalation: contacts to text in turn when nobody of the previous level was reached (or,
        with ``ack_within``, acknowledged): each a number or a list of numbers. (templated)
    :param ack_within: a ``timedelta``: wait this long after paging a level for a reply matching
        ``ack_match`` (``ACK``) from anyone paged so far; none: page the next level. A reply ends it.
    :param ack_conn_id: the connection whose inbox carries the replies (default: ``sms_conn_id``;
        Cellcast or Cloudware).
    :param ack_match: keywords (whole words, any case) or a regex that acknowledge.
    :param delivery_poll_interval: seconds between delivery-report (and reply) polls while waiting.

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
        "escalation",
        "deliver_within",
        "ack_within",
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
        deliver_within: timedelta | float | str | None = None,
        escalation: Any = (),
        ack_within: timedelta | float | str | None = None,
        ack_conn_id: str | None = None,
        ack_match: str | Sequence[str] = ("ACK",),
        delivery_poll_interval: float = 30.0,
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
        self.deliver_within = deliver_within
        self.escalation = escalation
        self.ack_within = ack_within
        self.ack_conn_id = ack_conn_id
        self.ack_match = ack_match
        self.delivery_poll_interval = delivery_poll_interval
        if self.wants_fallback:
            from airflow_provider_sms.core.fallback import positive_seconds
            from airflow_provider_sms.core.inbound import check_poll_interval

            for name, value in (("deliver_within", deliver_within), ("ack_within", ack_within)):
                if not isinstance(value, str):  # a template is checked when rendered
                    positive_seconds(value, name)
            if deliver_within is None and ack_within is None:
                raise SmsValidationError(f"{self.task_id}: escalation needs deliver_within or ack_within")
            check_poll_interval(delivery_poll_interval, name="delivery_poll_interval")
            if messages is not None or send_at is not None or local_time is not None or quiet is not None:
                raise SmsValidationError(
                    f"{self.task_id}: deliver_within, escalation and ack_within take `to` and `message`, sent now: "
                    "not with messages, send_at, local_time or quiet_hours"
                )

    @property
    def wants_fallback(self) -> bool:
        """Whether this send follows delivery (``deliver_within``) or waits for an ``ACK`` (``ack_within``)."""
        return self.deliver_within is not None or self.ack_within is not None or bool(self.escalation)

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
            send_with_failover,
        )

        if self.wants_fallback and not self.is_dry_run:
            return self._start_fallback(context)
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

            if dry_run:
                return through(to)
            return self.send_through(
                ledger, to, text, through, provider=primary.provider, region=primary.default_region
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

    # --- delivery-based fallback and escalation (core.fallback; the trigger waits, the task sends) -----

    def _start_fallback(self, context: Context) -> dict[str, Any]:
        from airflow_provider_sms.core.fallback import FallbackPolicy, Ladder

        try:
            policy = FallbackPolicy.of(
                self._conn_ids(),
                list_from_template(self.to),
                escalation=list_from_template(self.escalation) or (),
                deliver_within=_duration(self.deliver_within, "deliver_within"),
                ack_within=_duration(self.ack_within, "ack_within"),
                region=self._hooks()[0]().default_region,
            )
            if self.validity is not None:  # every connection of the ladder must take it, before any text
                for conn_id, make_hook in zip(self._conn_ids()[1:], self._hooks()[1:], strict=True):
                    self._check_validity(conn_id, make_hook())
            if self.ack_within is not None:
                from airflow_provider_sms.hooks import get_sms_hook

                get_sms_hook(str(self.ack_conn_id or self.sms_conn_id)).check_lists_inbound()
        except SmsError as err:
            raise self.failure(err) from err
        return self._run_fallback(context, policy, Ladder())

    def _run_fallback(self, context: Context, policy: Any, ladder: Any) -> dict[str, Any]:
        """Send the steps due (each once, through the send ledger), then defer until the next decision."""
        from datetime import timezone

        from airflow_provider_sms.core.fallback import advance, step_key
        from airflow_provider_sms.core.phone import mask_number
        from airflow_provider_sms.hooks import get_sms_hook
        from airflow_provider_sms.operators.base import _all_rejected
        from airflow_provider_sms.triggers.fallback import DeliveryFallbackTrigger

        text = str(self.message)
        ledger = self.send_ledger(context)
        hooks = {c: cache(partial(get_sms_hook, c, **self.hook_kwargs)) for c in policy.conn_ids}

        def send(step: Any) -> tuple[dict[str, Any], str]:
            hook = hooks[step.conn_id]()
            numbers = list(step.numbers)

            def through(todo: list[str]) -> SendResult:
                return hook.send_sms(todo, text, sender=self.sender)

            try:
                result = self.send_through(
                    ledger,
                    numbers,
                    text,
                    through,
                    provider=hook.provider,
                    region=hook.default_region,
                    key=step_key(step, text),
                )
            except SmsValidationError:
                raise
            except SmsError as err:  # the whole step failed: its recipients move on where the code allows
                result = err.result or _all_rejected(hook.provider, numbers, err)
            masked = ", ".join(mask_number(n) for n in numbers)
            self.log.info("level %d through %s to %s: SMS %s", step.level, step.conn_id, masked, result.summary())
            return result.to_dict(), hook.last_delivery_status

        try:
            wait = advance(policy, ladder, send, clock=lambda: datetime.now(timezone.utc))
        except SmsError as err:
            raise self.failure(err) from err
        if wait is None:
            return self._finish_fallback(context, policy, ladder)
        self.log.info(
            "waiting for %d delivery report(s)%s until %s",
            len(wait.messages),
            " and an acknowledgement" if wait.ack_from else "",
            wait.wake_at,
        )
        self.defer(
            trigger=DeliveryFallbackTrigger(
                str(self.ack_conn_id or self.sms_conn_id),
                messages=wait.messages,
                wake_at=wait.wake_at,
                poll_interval=self.delivery_poll_interval,
                ack_from=wait.ack_from,
                match=self.ack_match,
                since=wait.ack_since,
                state={"policy": policy.to_dict(), "ladder": ladder.to_dict()},
            ),
            method_name="resume_fallback",
        )
        raise AssertionError("defer() returned")  # pragma: no cover

    def resume_fallback(self, context: Context, event: dict[str, Any] | None = None, **_: Any) -> dict[str, Any]:
        """Back from ``DeliveryFallbackTrigger``: fold in what it learnt, send what is due, wait again or end."""
        from airflow_provider_sms._compat import AirflowFailException
        from airflow_provider_sms.core.fallback import FallbackPolicy, Ladder, acknowledge, apply_reports

        event = event or {}
        state = event.get("state") or {}
        if "policy" not in state or "ladder" not in state:
            raise AirflowFailException("resumed without the fallback's state; nothing more is sent")
        policy, ladder = FallbackPolicy.from_dict(state["policy"]), Ladder.from_dict(state["ladder"])
        if event.get("status") == "error":
            context["ti"].xcom_push(key="return_value", value=self._fallback_result(policy, ladder))
            raise AirflowFailException(f"waiting for delivery reports or replies failed: {event.get('error')}")
        apply_reports(ladder, [*(event.get("reports") or []), *self._webhook_reports(ladder)])
        if event.get("status") == "acked":
            acknowledge(ladder, event.get("message") or {})
        return self._run_fallback(context, policy, ladder)

    def _webhook_reports(self, ladder: Any) -> list[dict[str, Any]]:
        """Delivery reports the status webhooks recorded (Airflow 3) for texts not confirmed yet, from the
        connections that have webhooks set up (a ``webhook_secret``): the events of their
        ``sms_status_asset`` since the first such text. Clickatell reports only this way."""
        from airflow_provider_sms._compat import AIRFLOW_V_3

        waiting: dict[str, set[str]] = {}  # conn id -> message ids
        since: dict[str, str] = {}  # conn id -> when its first such text went out
        for m in ladder.messages:
            if m["state"] in ("pending", "no_report") and m.get("message_id"):
                waiting.setdefault(m["conn_id"], set()).add(str(m["message_id"]))
                since[m["conn_id"]] = min(since.get(m["conn_id"], m["sent_at"]), m["sent_at"])
        if not AIRFLOW_V_3 or not waiting:
            return []
        from airflow_provider_sms.assets import STATUS, asset_name, asset_uri
        from airflow_provider_sms.hooks import get_sms_hook

        found: list[dict[str, Any]] = []
        for conn_id, ids in waiting.items():
            try:
                if not get_sms_hook(conn_id).webhook_secret:
                    continue
                from airflow.sdk.execution_time.context import InletEventsAccessor

                events = InletEventsAccessor(
                    asset_name=asset_name(conn_id, STATUS), asset_uri=asset_uri(conn_id, STATUS)
                ).after(since[conn_id])
                for event in events:
                    report = (event.extra or {}).get("report")
                    if isinstance(report, dict) and str(report.get("message_id")) in ids:
                        found.append({**report, "conn_id": conn_id})
            except Exception as err:  # no asset (no DAG uses it), no task runner: the polls decide alone
                self.log.info("no status webhook reports from %s (%s)", conn_id, type(err).__name__)
        return found

    def _fallback_result(self, policy: Any, ladder: Any) -> dict[str, Any]:
        from airflow_provider_sms.core.fallback import summary

        out = summary(policy, ladder)
        accepted = [
            {"to": t["to"], "message_id": t["message_id"], "conn_id": t["conn_id"], "level": t["level"]}
            for t in out["texts"]
            if t["state"] != "refused"
        ]
        rejected = [
            {"to": t["to"], "code": t["code"], "conn_id": t["conn_id"], "level": t["level"]}
            for t in out["texts"]
            if t["state"] == "refused"
        ]
        return {"provider": self._hooks()[0]().provider, "accepted": accepted, "rejected": rejected, "fallback": out}

    def _finish_fallback(self, context: Context, policy: Any, ladder: Any) -> dict[str, Any]:
        from airflow_provider_sms._compat import AirflowFailException
        from airflow_provider_sms.core.phone import mask_number

        data = self._fallback_result(policy, ladder)
        out = data["fallback"]
        reached = ", ".join(f"{mask_number(n)} via {c}" for n, c in out["reached"].items()) or "nobody confirmed"
        acked = f"; acknowledged by {mask_number(out['acked_by'])}" if out["acked_by"] else ""
        self.log.info("fallback ended %s at level %d: %s%s", out["status"], out["level"], reached, acked)
        if out["status"] in ("undelivered", "no_ack") and self.fail_on_rejected:
            context["ti"].xcom_push(key="return_value", value=data)
            what = "nobody acknowledged" if out["status"] == "no_ack" else "the text was not delivered"
            raise AirflowFailException(f"{what} ({len(out['texts'])} text(s) sent); the result is in XCom")
        return data

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


def _duration(value: Any, name: str) -> float | None:
    """A ``timedelta``, seconds, or seconds as rendered text (``"{{ params.ack_within_seconds }}"``)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise SmsValidationError(f"{name} must be a timedelta or a number of seconds, not {value!r}") from None
    from airflow_provider_sms.core.fallback import positive_seconds

    return positive_seconds(value, name)
