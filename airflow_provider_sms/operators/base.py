"""What every SMS operator does around its hook: log, push the result, decide fail or retry, send once
across tries, and send at each recipient's local time.

Once across tries (``resumable``): every send goes through ``core.delivery.send_once`` with the task
instance's send ledger (``state.ledger``), so a try sends only to recipients no earlier try got
accepted for, a request that may have gone out unanswered is reported ``in_doubt`` and not resent
(unless ``resend_in_doubt=True``), and the XCom result is the merge of all tries. That makes Airflow's
retries safe, so the policy is: a send where some recipients met an outage or a rate limit raises a
retryable error (Airflow retries it as ``retries`` say, and the retry sends only to those); bad input,
auth, credit, rejections and recipients in doubt fail the task without retry; the full result is in
XCom either way. Where no ledger can be had (outside a task), the older rule stands: retryable only
when nobody was accepted and every failure was an outage or rate limit.

Local time and quiet hours (``send_timed``): recipients are planned with ``core.localtime`` and grouped
by delivery time. A provider that schedules gets each group's time as ``send_at``. For one that cannot
(Cloudware, Cellcast chat and MMS), the groups due now are sent and the task **defers** with Airflow's
``DateTimeTrigger`` until the next group is due, freeing its worker slot; the groups still to send and
the result so far travel in the deferral's kwargs, so a task resuming on another worker sends only what
is left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_sms._compat import AirflowFailException, BaseOperator, Context
from airflow_provider_sms.core.errors import SmsError, error_class_for
from airflow_provider_sms.core.guard import DEFAULT_SEND_TIMEOUT

if TYPE_CHECKING:
    from airflow_provider_sms.core.localtime import Slot
    from airflow_provider_sms.core.results import SendResult, SentCheck
    from airflow_provider_sms.state.ledger import SendLedger

_SUMMARY_LIMIT = 10
HELD_SEND = "held_send"  # XCom key of a held send's state: the groups still to send and the result so far


@dataclass
class TimedSender:
    """How an operator sends one group at a given time (``send_at`` None: now)."""

    provider: str
    region: str | None
    schedules: bool  # the provider holds a message until ``send_at``; otherwise the task defers
    send: Callable[[list[str], str, datetime | None], SendResult]


def date_time_trigger(moment: datetime) -> Any:
    """Airflow's own ``DateTimeTrigger`` (standard provider on Airflow 3, core on 2.11)."""
    import pendulum

    try:
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger
    except ImportError:  # Airflow 2.11 without the standard provider
        from airflow.triggers.temporal import DateTimeTrigger  # type: ignore[no-redef]
    return DateTimeTrigger(moment=pendulum.instance(moment))


class SmsBaseOperator(BaseOperator):
    """Shared execution for the SMS operators.

    :param fail_on_rejected: fail the task (after pushing the result) when any recipient was rejected
        or unsubscribed. With False, the task succeeds as long as the provider was reached.
    :param send_timeout: seconds the send may take in all, retries included (default 600); recipients
        not tried by then are reported ``provider_unavailable``, nothing sent to them.
    :param resend_in_doubt: on a retry, resend to recipients whose request may have gone out without
        an answer (an earlier try died mid-request). Off by default: they are reported ``in_doubt``
        and not texted again.
    :param max_parts: refuse the whole send, before any request, when it needs more SMS parts than
        this (all recipients together).
    :param max_cost: refuse the whole send, before any request, when its estimated cost (from the
        connection's ``prices`` extra) is above this; a send that cannot be priced is refused too.
    :param smart_encoding: replace GSM-7 look-alikes (curly quotes, dashes, ellipsis, odd spaces) so
        one stray character does not turn the text into UCS-2 parts; False sends exactly what was given.
    :param validity: how long the provider may keep trying to deliver, a ``timedelta`` in whole minutes
        (Clickatell's ``validityPeriod``); providers without one refuse it before sending.
    :param respect_opt_out: skip recipients in the opt-out register (they replied STOP, or a provider
        reported them opted out): they are reported ``unsubscribed`` and no request is made for them,
        through any connection, fallbacks included. If the register cannot be read the task fails,
        retryable, before any request. Set False only for texts to your own staff (on-call alerts).
    """

    ui_color = "#d6f5e3"

    def __init__(
        self,
        *,
        fail_on_rejected: bool = True,
        send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
        quiet_hours: Any = None,
        resend_in_doubt: bool = False,
        max_parts: int | None = None,
        max_cost: float | None = None,
        smart_encoding: bool = True,
        validity: timedelta | None = None,
        respect_opt_out: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        from airflow_provider_sms.core.safeguards import SendPolicy

        self.respect_opt_out = respect_opt_out
        SendPolicy.of(max_parts=max_parts, max_cost=max_cost, smart_encoding=smart_encoding, validity=validity)
        self.max_parts = max_parts
        self.max_cost = max_cost
        self.smart_encoding = smart_encoding
        self.validity = validity
        self.fail_on_rejected = fail_on_rejected
        self.send_timeout = send_timeout
        self.resend_in_doubt = resend_in_doubt
        self._send_ledger: SendLedger | None = None
        self.quiet_hours = None
        if quiet_hours is not None:
            from airflow_provider_sms.core.localtime import QuietHours

            self.quiet_hours = QuietHours.parse(quiet_hours)  # a bad window fails when the DAG is parsed

    @property
    def hook_kwargs(self) -> dict[str, Any]:
        """What every operator passes to its hook."""
        kwargs: dict[str, Any] = {"send_timeout": self.send_timeout}
        if self.max_parts is not None or self.max_cost is not None:
            kwargs.update(max_parts=self.max_parts, max_cost=self.max_cost)
        if not self.smart_encoding:
            kwargs["smart_encoding"] = False
        if self.validity is not None:
            kwargs["validity"] = self.validity
        if not self.respect_opt_out:
            kwargs["respect_opt_out"] = False
        return kwargs

    def deliver(self, context: Context, send: Callable[[], SendResult]) -> dict[str, Any]:
        """Run ``send`` and turn its outcome into an XCom value, a failure, or a retry."""
        try:
            result = send()
        except SmsError as err:
            if err.result is None:
                raise self.failure(err) from err
            result = err.result
        return self.finish(context, result)

    def finish(self, context: Context, result: SendResult) -> dict[str, Any]:
        self.log.info("SMS %s", result.summary())
        data = result.to_dict()
        if result.ok:
            return data
        self._log_problems(result)
        context["ti"].xcom_push(key="return_value", value=data)
        retry_later = [r["to"] for r in result.rejected if error_class_for(r["code"]).retryable]
        doubt = len(result.in_doubt)
        everyone = {a["to"] for a in result.accepted} | {r["to"] for r in result.rejected}
        total = len(everyone | set(result.unsubscribed) | set(result.in_doubt))
        message = (
            f"{len(result.rejected)} recipient(s) rejected, {len(result.unsubscribed)} unsubscribed and {doubt} in "
            f"doubt of {total}; the full result is in XCom"
        )
        if self._send_ledger is not None and retry_later and (self.fail_on_rejected or self._retries_left(context)):
            raise SmsError(
                message + f"; {len(retry_later)} met an outage or a rate limit and were not processed: a retry "
                "sends only to them (the send ledger keeps who was accepted)"
            )
        if not self.fail_on_rejected and result.accepted:
            return data
        if self._send_ledger is None and result.retry_safe:
            raise SmsError(message + "; nothing was processed, so the task may be retried safely")
        if doubt:
            message += (
                f"; {doubt} recipient(s) in doubt (a request may have gone out without an answer) are not resent: "
                "check the provider, or set resend_in_doubt=True on the task and clear it"
            )
        if self._send_ledger is None:  # no ledger to resume from: a retry would text the accepted again
            raise AirflowFailException(message + "; not retried so that nobody is texted twice")
        raise AirflowFailException(message + "; not retried: a retry would not change it")

    def _retries_left(self, context: Context) -> bool:
        """Whether Airflow will retry this task if it fails now."""
        try_number = getattr(context.get("ti"), "try_number", None)
        return bool(self.retries) and isinstance(try_number, int) and try_number <= int(self.retries or 0)

    # --- once across tries ------------------------------------------------------------------------------

    def send_ledger(self, context: Context) -> SendLedger | None:
        """This task instance's send ledger (read once per try), or None outside a task."""
        if self._send_ledger is None:
            from airflow_provider_sms.state.ledger import ledger_for

            ledger = ledger_for(context)
            if ledger is None:
                return None
            try:
                view = ledger.view()
            except Exception as exc:  # nothing was sent yet, so a retry is safe: not an SmsError that fails for good
                raise RuntimeError(f"could not read the send ledger ({type(exc).__name__}); nothing was sent") from exc
            if view.chunks:
                self.log.info("send ledger: %d record(s) from earlier tries %s", view.chunks, sorted(view.tries))
            self._send_ledger = ledger
        return self._send_ledger

    def send_through(
        self,
        ledger: SendLedger | None,
        to: list[str],
        text: str,
        through: Callable[[list[str]], SendResult],
        *,
        provider: str,
        region: str | None,
        key: str | None = None,
    ) -> SendResult:
        """``through(to)`` once across tries: only to whom no earlier try got accepted, with this task's
        ``resend_in_doubt`` and provider confirmation (``core.delivery.send_once``); a plain call
        without a ledger. ``key`` names the send in the ledger (default: the text)."""
        if ledger is None:
            return through(to)
        from airflow_provider_sms.core.delivery import send_once

        return send_once(
            ledger,
            to,
            text,
            through,
            provider=provider,
            region=region,
            resend_in_doubt=self.resend_in_doubt,
            confirm=self.confirm_sent,
            key=key,
        )

    def resumable(self, context: Context, sender: TimedSender) -> TimedSender:
        """``sender`` sending once across tries: only to whom no earlier try got accepted."""
        ledger = self.send_ledger(context)
        if ledger is None:
            return sender
        inner = sender.send

        def send(to: list[str], text: str, send_at: datetime | None) -> SendResult:
            return self.send_through(
                ledger,
                to,
                text,
                lambda todo: inner(todo, text, send_at),
                provider=sender.provider,
                region=sender.region,
            )

        return replace(sender, send=send)

    def confirm_sent(self, conn_id: str, numbers: list[str], message: str, since: datetime) -> SentCheck | None:
        """Ask ``conn_id``'s provider about recipients an earlier try left in doubt (``send_once``)."""
        from airflow_provider_sms.hooks import get_sms_hook

        try:
            hook = get_sms_hook(conn_id, **self.hook_kwargs)
        except SmsError:
            raise
        except Exception as exc:  # the connection is gone: they stay in doubt
            self.log.warning("cannot ask %s about recipients in doubt: %s", conn_id, type(exc).__name__)
            return None
        return hook.confirm_sent(numbers, message, since=since)

    # --- local time and quiet hours --------------------------------------------------------------------

    def timed_sender(self) -> TimedSender:
        """How this operator sends one group at a time; operators with ``quiet_hours`` implement it."""
        raise NotImplementedError

    def send_one_message(self, context: Context, to: Any, message: str) -> dict[str, Any]:
        """The usual execute of a one-text operator: send now, or per recipient when ``quiet_hours`` is set."""
        from airflow_provider_sms.core.templated import list_from_template

        recipients = list_from_template(to)
        if self.quiet_hours is None:
            try:
                sender = self.resumable(context, self.timed_sender())
            except SmsError as err:
                raise self.failure(err) from err
            return self.deliver(context, lambda: sender.send(recipients, message, None))
        from airflow_provider_sms.core.phone import split_recipients

        return self.send_timed(context, [(n, message, None) for n in split_recipients(recipients)])

    def check_whole_send(self, groups: list[tuple[list[str], str]]) -> None:
        """Refuse, before any group is sent, a send whose ``(recipients, text)`` groups together go over
        ``max_parts`` or ``max_cost`` (each group's own send checks it alone); overridden where the
        operator can plan its groups (``SendSmsOperator``)."""

    def send_timed(
        self,
        context: Context,
        rows: list[tuple[str, str, str | None]],
        *,
        local_time: time | None = None,
        default_tz: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Send ``(recipient, text, tz)`` rows at each recipient's ``local_time`` and outside the quiet hours."""
        from airflow_provider_sms.core.localtime import plan_times, slots_for
        from airflow_provider_sms.core.phone import normalize_number

        try:
            sender = self.timed_sender()
            normalized = []
            for raw, text, tz in rows:
                try:
                    normalized.append((normalize_number(raw, sender.region), text, tz))
                except SmsError:
                    normalized.append((raw, text, None))  # rejected by the send as an invalid number
            valid = [(to, tz) for to, _text, tz in normalized if to.startswith("+")]
            timings = plan_times(
                valid,
                now=datetime.now(timezone.utc),
                local_time=local_time,
                quiet_hours=self.quiet_hours,
                default_tz=default_tz,
            )
        except SmsError as err:
            raise self.failure(err) from err
        slots = slots_for([(to, text) for to, text, _tz in normalized], timings)
        try:
            self.check_whole_send([(slot.to, slot.message) for slot in slots])
        except SmsError as err:
            raise self.failure(err) from err
        timing = {number: t.to_dict() for number, t in timings.items()}
        for slot in slots:
            when = slot.deliver_at.isoformat() if slot.deliver_at else "now"
            self.log.info("%d recipient(s) at %s", len(slot.to), when)
        if dry_run:
            return {
                "dry_run": True,
                "provider": sender.provider,
                "slots": [slot.to_dict() for slot in slots],
                "timing": timing,
            }
        from airflow_provider_sms.core.results import SendResult

        try:
            sender = self.resumable(context, sender)
        except SmsError as err:
            raise self.failure(err) from err
        return self._send_slots(context, sender, slots, SendResult(sender.provider), timing)

    def resume_timed(
        self,
        context: Context,
        event: Any = None,
        *,
        pending: list[dict[str, Any]] | None = None,
        result: dict[str, Any] | None = None,
        timing: dict[str, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Back from a ``DateTimeTrigger``: send the groups now due, defer again or finish.

        The state comes with the deferral's kwargs, or (where a runner passes only the trigger's event,
        as ``dag.test()`` does) from the ``held_send`` XCom pushed before deferring, which Airflow keeps
        across a deferral.
        """
        from airflow_provider_sms.core.localtime import Slot
        from airflow_provider_sms.core.results import SendResult

        if pending is None or result is None or timing is None:
            ti = context["ti"]
            state = ti.xcom_pull(task_ids=self.task_id, key=HELD_SEND, map_indexes=getattr(ti, "map_index", None))
            if not isinstance(state, dict):
                raise AirflowFailException(
                    "resumed without the held send's state; nothing more is sent, so that nobody is texted twice"
                )
            pending, result, timing = state["pending"], state["result"], state["timing"]
        slots = [Slot.from_dict(s) for s in pending]
        try:
            sender = self.resumable(context, self.timed_sender())
        except SmsError as err:
            raise self.failure(err) from err
        return self._send_slots(context, sender, slots, SendResult(**result), timing)

    def _send_slots(
        self,
        context: Context,
        sender: TimedSender,
        slots: list[Slot],
        so_far: SendResult,
        timing: dict[str, dict[str, Any]],
    ) -> dict[str, Any]:
        now = datetime.now(timezone.utc)
        due = [s for s in slots if sender.schedules or s.deliver_at is None or s.deliver_at <= now]
        later = [s for s in slots if s not in due]
        for slot in due:
            send_at = slot.deliver_at if sender.schedules and slot.deliver_at and slot.deliver_at > now else None
            try:
                so_far.merge(sender.send(slot.to, slot.message, send_at))
            except SmsError as err:
                if err.result is None and not so_far.accepted:
                    raise self.failure(err) from err
                so_far.merge(err.result or _all_rejected(sender.provider, slot.to, err))
        if later:
            moment = later[0].deliver_at
            assert moment is not None
            self.log.info("holding %d group(s); the next is due at %s", len(later), moment.isoformat())
            state = {"pending": [s.to_dict() for s in later], "result": so_far.to_dict(), "timing": timing}
            context["ti"].xcom_push(key=HELD_SEND, value=state)
            self.defer(trigger=date_time_trigger(moment), method_name="resume_timed", kwargs=state)
        for entry in so_far.accepted:
            entry.update(timing.get(entry["to"], {}))
        return self.finish(context, so_far)

    def failure(self, err: SmsError) -> Exception:
        """What to raise for a send that failed before any result: only an outage or rate limit stays
        retryable; anything else fails the task for good."""
        if err.retryable:
            return err
        return AirflowFailException(f"{type(err).__name__}: {err}")

    def _log_problems(self, result: SendResult) -> None:
        from airflow_provider_sms.core.phone import mask_number

        for entry in result.rejected[:_SUMMARY_LIMIT]:
            self.log.warning("not sent to %s: %s (%s)", mask_number(str(entry["to"])), entry["code"], entry["reason"])
        for number in result.unsubscribed[:_SUMMARY_LIMIT]:
            self.log.warning("not sent to %s: unsubscribed", mask_number(number))
        hidden = len(result.rejected) + len(result.unsubscribed) - 2 * _SUMMARY_LIMIT
        if hidden > 0:
            self.log.warning("... and up to %d more; see the XCom result", hidden)


def _all_rejected(provider: str, to: list[str], err: SmsError) -> SendResult:
    """A group that failed as a whole, recorded per recipient so the earlier groups' result stands."""
    from airflow_provider_sms.core.errors import BY_CODE
    from airflow_provider_sms.core.results import SendResult

    result = SendResult(provider)
    for number in to:
        result.add_rejected(number, err.code if err.code in BY_CODE else "delivery_unknown", str(err))
    return result
