"""``SmsNotifier`` (alias ``send_sms_notification``): an SMS from any Airflow callback.

Use it as ``on_failure_callback=SmsNotifier(...)`` on a DAG or task, in a human-in-the-loop operator's
``notifiers=``, or (Airflow 3.1+) as a Deadline Alert's ``AsyncCallback(SmsNotifier, kwargs={...})``,
which the triggerer awaits: ``async_notify`` runs the send in a worker thread, so its event loop never
blocks. The message is templated from the callback context; without one, a default fitted to the
occasion is sent: a task failure (DAG, task, try, run, exception; one SMS), a missed deadline (DAG,
run, deadline; one SMS), or a human-in-the-loop request (subject, the words to reply with, the link to
the request's page; at most two SMS parts).
"""

from __future__ import annotations

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
        context: Context | None = None,
    ) -> None:
        from airflow_provider_sms.core.localtime import QuietHours, check_zone

        self.sms_conn_id = sms_conn_id
        self.to = to
        self.message = message
        self.sender = sender
        self.quiet_hours = QuietHours.parse(quiet_hours) if quiet_hours is not None else None
        self.default_tz = check_zone(default_tz) if default_tz else None
        if context is None:
            super().__init__()
        else:  # Airflow 3: a Deadline Alert's AsyncCallback builds the notifier with the context
            super().__init__(context)  # type: ignore[call-arg,unused-ignore]

    def _send(self, context: Mapping[str, Any]) -> None:
        from airflow_provider_sms.core.templated import list_from_template
        from airflow_provider_sms.hooks import get_sms_hook

        text = self.message if self.message else default_message(context)
        hook = get_sms_hook(self.sms_conn_id)
        for send_at, to in self._slots(hook, list_from_template(self.to)):
            if send_at is not None and not hook.supports_send_at:
                self.log.warning(
                    "not texting %d recipient(s) in their quiet hours: %s cannot hold a message until %s",
                    len(to),
                    hook.hook_name,
                    send_at.isoformat(),
                )
                continue
            result = hook.send_sms(to, text, sender=self.sender, send_at=send_at)
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
