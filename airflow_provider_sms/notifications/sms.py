"""``SmsNotifier`` (alias ``send_sms_notification``): an SMS from any Airflow callback.

Use it as ``on_failure_callback=SmsNotifier(...)`` on a DAG or task, in a human-in-the-loop operator's
``notifiers=``, or (Airflow 3.1+) as a Deadline Alert's ``AsyncCallback(SmsNotifier, kwargs={...})``,
which the triggerer awaits: ``async_notify`` runs the send in a worker thread, so its event loop never
blocks. The message is templated from the callback context; without one, a default fitted to the
occasion is sent: a task failure (DAG, task, try, run, exception; one SMS), a missed deadline (DAG,
run, deadline; one SMS), or a human-in-the-loop request (subject, the words to reply with, the link to
the request's page; at most two SMS parts).

Once per occasion: where the callback runs with a task instance, the notifier sends through
``send_sms_once`` and that task instance's send ledger, so a callback that runs twice for one failure
(the same text) texts each recipient once. ``send_sms_once`` is also how the approval question by SMS
is meant to be sent, with a key that stays the same across tries.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_sms._compat import BaseNotifier, Context

_PART_UNITS = {1: 160, 2: 306}  # GSM-7 septets in one part, and in two concatenated parts


def to_gsm(text: str) -> str:
    """``text`` on one line in GSM-7 (anything outside it becomes ``?``), so a default stays cheap."""
    from airflow_provider_sms.core.encoding import GSM7_BASIC, GSM7_EXTENSION

    return "".join(c if c in GSM7_BASIC or c in GSM7_EXTENSION else "?" for c in " ".join(text.split()))


def fit_segments(text: str, parts: int = 1, *, keep_end: str = "") -> str:
    """Shorten ``text`` to ``parts`` GSM-7 SMS parts, ending with ``...`` where cut; ``keep_end`` is
    appended whole (a link, the reply words), so only ``text`` is cut."""
    from airflow_provider_sms.core.encoding import count_segments

    head, tail = to_gsm(text), to_gsm(keep_end)
    if keep_end[:1].isspace():
        tail = " " + tail
    while count_segments(head + tail).segments > parts and head:
        over = count_segments(head + tail).units - _PART_UNITS[parts] + 3
        head = head[: max(len(head) - max(over, 1), 0)].rstrip() + "..." if len(head) > 3 else ""
    return head + tail


def fit_one_segment(text: str) -> str:
    """Shorten ``text`` to one SMS part (GSM-7 when possible), ending with ``...`` when cut."""
    return fit_segments(text, 1)


def _get(source: Any, name: str) -> Any:
    """An attribute or a key: contexts hold objects on workers and plain dicts in the triggerer."""
    return source.get(name) if isinstance(source, Mapping) else getattr(source, name, None)


def default_message(context: Mapping[str, Any]) -> str:
    """The text to send when no ``message`` was given, fitted to what the callback is about."""
    if context.get("deadline") is not None:
        dag_run = context.get("dag_run") or {}
        deadline = context["deadline"]
        when = _get(deadline, "deadline_time")
        when_text = when.strftime("%Y-%m-%d %H:%M UTC") if hasattr(when, "strftime") else str(when or "")[:16]
        run_id = _get(dag_run, "dag_run_id") or _get(dag_run, "run_id") or ""
        return fit_segments(f"Airflow DEADLINE MISSED: {_get(dag_run, 'dag_id') or ''} run {run_id}, due {when_text}")
    task = context.get("task")
    if task is not None and hasattr(task, "options") and hasattr(task, "subject"):
        return hitl_message(task, context)
    ti = context.get("ti") or context.get("task_instance")
    dag = context.get("dag")
    state = _get(ti, "state") if ti is not None else None
    state = str(getattr(state, "value", state) or "alert").upper()  # TaskInstanceState is a str enum
    where = _get(dag, "dag_id") or ""
    if ti is not None:
        where += f".{_get(ti, 'task_id')} try {_get(ti, 'try_number')}"
    run_id = context.get("run_id")
    exception = context.get("exception")
    text = f"Airflow {state}: {where}" + (f" run {run_id}" if run_id else "") + (f": {exception}" if exception else "")
    return fit_segments(text)


def hitl_message(task: Any, context: Mapping[str, Any], *, ref: str | None = None) -> str:
    """A human-in-the-loop request as SMS: the subject, the words to reply with (and the question's
    reference), and the request's page (when ``[api] base_url`` is set), in at most two parts."""
    reply_words = [str(w).upper() for w in task.options]
    ask = f" Reply {' or '.join(reply_words)}" if len(reply_words) <= 3 else f" Reply one of {', '.join(reply_words)}"
    if ref:
        ask += f" (ref {ref})"
    link = ""
    try:
        link = f": {task.generate_link_to_ui_from_context(context=context)}"
    except Exception:  # no [api] base_url (or not a HITL task): the request still reads without its link
        link = ""
    subject = " ".join(str(task.subject).split())
    end = "" if subject.endswith(("?", "!", ".")) else "."
    return fit_segments(subject, 2, keep_end=f"{end}{ask}{link}")


class SmsNotifier(BaseNotifier):
    """Send an SMS when a callback fires, a deadline is missed or a human's input is requested.

    :param sms_conn_id: a ``cellcast``, ``clickatell`` or ``cloudware`` connection. (templated)
    :param to: recipients: a list or a comma-separated string. (templated)
    :param message: the text, templated with the callback context (``dag``, ``ti``, ``run_id``,
        ``exception``...; ``dag_run`` and ``deadline`` for a Deadline Alert). When omitted, a default
        fitted to the occasion is sent (see the module's description).
    :param sender: sender ID; defaults to the connection's. (templated)
    :param quiet_hours: ``("21:00", "08:00")``: a recipient whose local time is inside the window gets
        the text when it ends, through a provider that schedules (Cellcast, Clickatell); a notifier
        cannot wait, so with Cloudware they are skipped and the skip is logged. Off by default: an
        alert meant to wake someone should stay immediate.
    :param default_tz: the zone for numbers with several zones or none (see ``core.localtime``); a
        number whose zone cannot be told is texted now, with a warning.
    :param resend_in_doubt: when the callback runs again for the same failure, resend to recipients
        whose text may have gone out without an answer (off: they are not texted twice).
    :param max_parts: refuse the text, before any request, when it needs more SMS parts than this
        (all recipients together).
    :param max_cost: refuse the text when its estimated cost (the connection's ``prices``) is above this.
    :param smart_encoding: replace GSM-7 look-alikes (curly quotes, dashes...); False sends the text as given.
    :param validity: how long the provider may keep trying (a ``timedelta``; Clickatell only).
    :param context: set by Airflow when the notifier runs as a Deadline Alert's ``AsyncCallback``.
    """

    template_fields: Sequence[str] = ("sms_conn_id", "to", "message", "sender")

    def __init__(
        self,
        *,
        sms_conn_id: str,
        to: Any,
        message: str | None = None,
        sender: str | None = None,
        quiet_hours: Any = None,
        default_tz: str | None = None,
        resend_in_doubt: bool = False,
        max_parts: int | None = None,
        max_cost: float | None = None,
        smart_encoding: bool = True,
        validity: Any = None,
        context: Context | None = None,
    ) -> None:
        from airflow_provider_sms.core.localtime import QuietHours, check_zone
        from airflow_provider_sms.core.safeguards import SendPolicy

        SendPolicy.of(max_parts=max_parts, max_cost=max_cost, smart_encoding=smart_encoding, validity=validity)
        self.policy_kwargs = {
            "max_parts": max_parts,
            "max_cost": max_cost,
            "smart_encoding": smart_encoding,
            "validity": validity,
        }

        self.sms_conn_id = sms_conn_id
        self.to = to
        self.message = message
        self.sender = sender
        self.quiet_hours = QuietHours.parse(quiet_hours) if quiet_hours is not None else None
        self.default_tz = check_zone(default_tz) if default_tz else None
        self.resend_in_doubt = resend_in_doubt
        if context is None:
            super().__init__()
        else:  # Airflow 3: a Deadline Alert's AsyncCallback builds the notifier with the context
            super().__init__(context)  # type: ignore[call-arg,unused-ignore]

    def _send(self, context: Mapping[str, Any]) -> None:
        from airflow_provider_sms.core.templated import list_from_template
        from airflow_provider_sms.hooks import get_sms_hook

        text = self.message if self.message else default_message(context)
        hook = get_sms_hook(self.sms_conn_id, **self.policy_kwargs)
        for send_at, to in self._slots(hook, list_from_template(self.to)):
            if send_at is not None and not hook.supports_send_at:
                self.log.warning(
                    "not texting %d recipient(s) in their quiet hours: %s cannot hold a message until %s",
                    len(to),
                    hook.hook_name,
                    send_at.isoformat(),
                )
                continue
            when = send_at.isoformat() if send_at else "now"
            result = send_sms_once(
                context,
                hook,
                to,
                text,
                sender=self.sender,
                send_at=send_at,
                key=f"notifier\x1f{when}\x1f{text}",
                resend_in_doubt=self.resend_in_doubt,
            )
            self.log.info("SMS notification %s%s", result.summary(), f" for {send_at.isoformat()}" if send_at else "")

    def _slots(self, hook: Any, to: Any) -> list[tuple[Any, list[str]]]:
        """``(send_at or None, recipients)`` pairs: everyone now, unless quiet hours hold some of them."""
        from airflow_provider_sms.core.errors import SmsValidationError
        from airflow_provider_sms.core.phone import normalize_number, split_recipients

        numbers = split_recipients(to)
        if self.quiet_hours is None:
            return [(None, numbers)]
        from datetime import datetime, timezone

        from airflow_provider_sms.core.localtime import plan_times

        slots: dict[Any, list[str]] = {}
        for number in numbers:
            at = None
            try:
                e164 = normalize_number(number, hook.default_region)
                timing = plan_times(
                    [(e164, None)],
                    now=datetime.now(timezone.utc),
                    quiet_hours=self.quiet_hours,
                    default_tz=self.default_tz,
                )[e164]
                at = timing.deliver_at
            except SmsValidationError as err:  # a bad number is rejected by the send; an unknown zone goes now
                self.log.warning("texting now, quiet hours not applied: %s", err)
            slots.setdefault(at, []).append(number)
        return sorted(slots.items(), key=lambda item: (item[0] is not None, item[0] or datetime.min))

    def notify(self, context: Context) -> None:
        self._send(context)

    async def async_notify(self, context: Context) -> None:
        """Send from the triggerer (a Deadline Alert) without blocking its event loop."""
        from asgiref.sync import sync_to_async

        await sync_to_async(self._send)(context)


send_sms_notification = SmsNotifier


def send_sms_once(
    context: Mapping[str, Any],
    hook: Any,
    to: Any,
    message: str,
    *,
    sender: str | None = None,
    send_at: Any = None,
    key: str | None = None,
    resend_in_doubt: bool = False,
) -> Any:
    """``hook.send_sms`` at most once per recipient for this task instance and ``key``, across callbacks
    that run twice and tries that repeat (the task's send ledger, ``state.ledger``); returns the
    ``SendResult`` of all of them. Without a task instance in ``context`` (a DAG-level callback, the
    triggerer), it is a plain send.

    :param key: names the send in the ledger (default: the text). The approval question passes one that
        stays the same across tries (``"hitl-question"``), since its text carries a per-try reference:
        a retried question is then not texted again, and its earlier result comes back.
    :param resend_in_doubt: resend to recipients whose request may have gone out without an answer.
    """
    from airflow_provider_sms.core.delivery import send_once
    from airflow_provider_sms.state.ledger import ledger_for

    def plain(numbers: Any) -> Any:
        return hook.send_sms(numbers, message, sender=sender, send_at=send_at)

    try:
        ledger = ledger_for(context)
        if ledger is not None:
            ledger.view()
    except Exception as exc:  # no ledger to be had: a plain send is better than no alert
        logging.getLogger(__name__).warning("sending without the send ledger: %s", type(exc).__name__)
        ledger = None
    if ledger is None:
        return plain(to)

    def confirm(conn_id: str, numbers: list[str], text: str, since: Any) -> Any:
        from airflow_provider_sms.hooks import get_sms_hook

        return get_sms_hook(conn_id).confirm_sent(numbers, text, since=since)

    return send_once(
        ledger,
        to,
        message,
        plain,
        provider=hook.provider,
        region=hook.default_region,
        resend_in_doubt=resend_in_doubt,
        confirm=confirm,
        key=key,
    )
