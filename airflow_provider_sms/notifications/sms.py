"""``SmsNotifier`` (alias ``send_sms_notification``): an SMS from any Airflow callback.

Use it as ``on_failure_callback=SmsNotifier(...)`` on a DAG or task, in a human-in-the-loop operator's
``notifiers=``, or (Airflow 3.1+) as a Deadline Alert's ``AsyncCallback(SmsNotifier, kwargs={...})``,
which the triggerer awaits: ``async_notify`` runs the send in a worker thread, so its event loop never
blocks. The message is templated from the callback context; without one, a default fitted to the
occasion is sent: a task failure (DAG, task, try, run, exception; one SMS), a missed deadline (DAG,
run, deadline; one SMS), or a human-in-the-loop request (subject, the words to reply with, the link to
the request's page; at most two SMS parts).

Once per occasion: where the callback runs with a task instance, the notifier sends through
``send_sms_once`` (``notifications.once``) and that task instance's send ledger, so a callback that
runs twice for one failure (the same text) texts each recipient once; the approval question and
escalation steps send through it too, each with a key that stays the same across tries.

Alerts are grouped (``state.alerts``): the first alert of a key (DAG and task by default) in its
``group_window`` goes at once, later ones, those over a phone's ``max_per_hour`` and those in its
quiet hours are held and go out as one digest per phone when the window ends (``send_due_digests``,
run by ``triggers.digest.SmsAlertDigestTrigger``); a success callback resolves a key that alerted
with one "RESOLVED" text to the phones that were told of it.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_sms._compat import BaseNotifier, Context
from airflow_provider_sms.notifications.once import send_sms_once

if TYPE_CHECKING:
    from airflow_provider_sms.state.alerts import Digest
    from airflow_provider_sms.state.variables import KeyStore

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
    :param key: what groups alerts (templated); default: the DAG id and task id (``sms_alerting.load``),
        the DAG id for a DAG callback, ``<dag id>.deadline`` for a Deadline Alert.
    :param group_window: after a key's first alert is texted, later alerts of the key are held for this
        long (a ``timedelta`` or seconds) and then go out as one digest. ``None`` turns grouping off:
        every callback texts, as a plain notifier (and a success callback texts too).
    :param max_per_hour: texts a phone gets from alerts in any hour (alerts, digests, RESOLVED), across
        every notifier; the rest is held for the digest. ``None``: no cap.
    :param resolve: resolve the key whatever the callback (a success callback is detected by itself).
    :param severity: ``"normal"`` or ``"critical"``: a critical alert is texted at once every time,
        ignoring ``quiet_hours`` and the group window (still within ``max_per_hour``).
    :param respect_opt_out: skip numbers in the opt-out register (reported ``unsubscribed``). An alert
        to your own staff (on-call) may set False: it is texted even to a number that once replied STOP.
    :param deliver_within: a ``timedelta``: when the delivery report does not say ``delivered`` in
        time (failed, expired, no report), the alert goes through the next of ``fallback_conn_ids``,
        then to the next contact of ``escalation``; never again to whom it was delivered
        (``triggers.fallback.afallback_notify``). The notifier waits for it: ``async_notify`` (a
        Deadline Alert, in the triggerer) in a worker thread of its own, never the event loop;
        ``notify`` (a callback in a worker) blocks the callback, at most ``deliver_within`` per step.
        Not for texts held by ``quiet_hours``.
    :param fallback_conn_ids: connections to try in turn after ``sms_conn_id`` (with ``deliver_within``).
    :param escalation: contacts to text when nobody of ``to`` was reached (with ``deliver_within``).
    :param delivery_poll_interval: seconds between delivery-report polls while waiting.
    :param context: set by Airflow when the notifier runs as a Deadline Alert's ``AsyncCallback``.
    """

    template_fields: Sequence[str] = ("sms_conn_id", "to", "message", "sender", "key")

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
        key: str | None = None,
        group_window: timedelta | float | None = timedelta(minutes=10),
        max_per_hour: int | None = 10,
        resolve: bool = False,
        severity: str = "normal",
        respect_opt_out: bool = True,
        deliver_within: Any = None,
        fallback_conn_ids: Sequence[str] = (),
        escalation: Sequence[Any] = (),
        delivery_poll_interval: float = 30.0,
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
            "respect_opt_out": respect_opt_out,
        }

        self.sms_conn_id = sms_conn_id
        self.to = to
        self.message = message
        self.sender = sender
        self.quiet_hours = QuietHours.parse(quiet_hours) if quiet_hours is not None else None
        self.default_tz = check_zone(default_tz) if default_tz else None
        self.resend_in_doubt = resend_in_doubt
        if severity not in ("normal", "critical"):
            raise ValueError(f"severity must be 'normal' or 'critical', not {severity!r}")
        if isinstance(group_window, (int, float)):
            group_window = timedelta(seconds=group_window)
        if group_window is not None and group_window <= timedelta(0):
            raise ValueError("group_window must be positive (or None: no grouping)")
        if max_per_hour is not None and max_per_hour < 1:
            raise ValueError("max_per_hour must be at least 1 (or None: no cap)")
        self.key = key
        self.group_window = group_window
        self.max_per_hour = max_per_hour
        self.resolve = resolve
        self.severity = severity
        # delivery-based fallback (deliver_within, fallback_conn_ids) is set up below this line
        from airflow_provider_sms.core.fallback import positive_seconds
        from airflow_provider_sms.core.inbound import check_poll_interval

        self.deliver_within = positive_seconds(deliver_within, "deliver_within")
        self.fallback_conn_ids = list(fallback_conn_ids)
        self.escalation = list(escalation)
        self.delivery_poll_interval = check_poll_interval(delivery_poll_interval, name="delivery_poll_interval")
        if context is None:
            super().__init__()
        else:  # Airflow 3: a Deadline Alert's AsyncCallback builds the notifier with the context
            super().__init__(context)  # type: ignore[call-arg,unused-ignore]

    def _send(self, context: Mapping[str, Any]) -> None:
        """A plain text, or (grouping on) an alert grouped by key or the resolution of one."""
        mode = self._mode(context)
        if mode == "resolve":
            self._resolve_alert(context)
        elif mode == "alert":
            self._send_alert(context)
        else:
            self._send_plain(context)

    def _mode(self, context: Mapping[str, Any]) -> str:
        """``plain`` (no grouping, or a human-in-the-loop request), ``resolve`` or ``alert``."""
        task = context.get("task")
        if self.group_window is None or (task is not None and hasattr(task, "options") and hasattr(task, "subject")):
            return "plain"
        about = ("dag", "ti", "task_instance", "dag_run", "deadline")
        if self.key is None and not any(context.get(name) is not None for name in about):
            return "plain"  # nothing to group by: a text sent by hand
        from airflow_provider_sms.state.alerts import listable

        if not listable():
            self.log.warning("alert grouping needs Variable keys listed from tasks (Airflow 3.3+): texting every alert")
            return "plain"
        return "resolve" if self.resolve or is_success(context) else "alert"

    def alert_key(self, context: Mapping[str, Any]) -> str:
        """The group an alert belongs to: ``key``, else the DAG and task (see ``key``)."""
        if self.key:
            return " ".join(str(self.key).split())
        dag_id = _get(context.get("dag"), "dag_id") or _get(context.get("dag_run"), "dag_id") or ""
        if context.get("deadline") is not None:
            return f"{dag_id}.deadline"
        ti = context.get("ti") or context.get("task_instance")
        if ti is None or context.get("reason") is not None:  # a DAG callback (its context may name a task)
            return str(dag_id) or "airflow"
        return f"{dag_id or _get(ti, 'dag_id')}.{_get(ti, 'task_id')}"

    def _numbers(self, hook: Any) -> list[str]:
        """The recipients, in E.164 where they parse (the send rejects those that do not)."""
        from airflow_provider_sms.core.errors import SmsValidationError
        from airflow_provider_sms.core.phone import normalize_number, split_recipients
        from airflow_provider_sms.core.templated import list_from_template

        numbers = []
        for number in split_recipients(list_from_template(self.to)):
            try:
                numbers.append(normalize_number(number, hook.default_region))
            except SmsValidationError:
                numbers.append(number)
        return list(dict.fromkeys(numbers))

    def _quiet_until(self, hook: Any, numbers: Sequence[str], now: datetime) -> dict[str, datetime]:
        """The phones in their quiet hours now, and when those end."""
        if self.quiet_hours is None or self.severity == "critical":
            return {}
        from airflow_provider_sms.core.errors import SmsValidationError
        from airflow_provider_sms.core.localtime import plan_times

        quiet: dict[str, datetime] = {}
        for number in numbers:
            try:
                timing = plan_times([(number, None)], now=now, quiet_hours=self.quiet_hours, default_tz=self.default_tz)
            except SmsValidationError as err:  # an unknown zone: texted now
                self.log.warning("texting now, quiet hours not applied: %s", err)
                continue
            release = timing[number].deliver_at
            if timing[number].held and release is not None:
                quiet[number] = release
        return quiet

    def _send_alert(self, context: Mapping[str, Any]) -> None:
        from airflow_provider_sms.core.phone import mask_number
        from airflow_provider_sms.hooks import get_sms_hook
        from airflow_provider_sms.state import alerts

        text = self.message if self.message else default_message(context)
        hook = get_sms_hook(self.sms_conn_id, **self.policy_kwargs)
        key, numbers, now = self.alert_key(context), self._numbers(hook), alerts.utcnow()
        assert self.group_window is not None
        record = {
            "conn_id": self.sms_conn_id,
            "sender": self.sender,
            "summary": failure_summary(context, self.message and text),
            "max_per_hour": self.max_per_hour,
            "default_tz": self.default_tz,
        }
        quiet_until = self._quiet_until(hook, numbers, now)
        try:
            groups = alerts.AlertGroups(alert_store())
            route = groups.route(
                key=key,
                numbers=numbers,
                quiet_until=quiet_until,
                now=now,
                window=self.group_window,
                max_per_hour=self.max_per_hour,
                critical=self.severity == "critical",
                record=record,
                event=failure_event(context, text),
            )
        except Exception as exc:  # the alert groups cannot be reached: an ungrouped alert beats none
            self.log.warning("SMS alert %s not grouped (%s): texting it", key, type(exc).__name__)
            self._send_plain(context)
            return
        if route.now:
            try:
                result = self._send_once(
                    context,
                    hook,
                    route.now,
                    text,
                    sender=self.sender,
                    key=f"notifier\x1fnow\x1f{text}",
                    resend_in_doubt=self.resend_in_doubt,
                )
            except Exception:  # not sent: the digest carries it
                for number in route.now:
                    groups.hold(number, key, due=route.window_end, now=now, flag=alerts.FAILURE, record=record)
                raise
            reached = {a["to"] for a in result.accepted} | set(getattr(result, "in_doubt", None) or ())
            groups.alerted(key, [n for n in route.now if n in reached], now, record)
            self.log.info(
                "SMS alert %s for %s: %s", "texted" if route.first else "texted (critical)", key, result.summary()
            )
        if route.held:
            self.log.info(
                "SMS alert for %s held for the digest due by %s: %s",
                key,
                route.window_end.isoformat(),
                ", ".join(mask_number(n) for n in route.held),
            )

    def _resolve_alert(self, context: Mapping[str, Any]) -> None:
        from airflow_provider_sms.hooks import get_sms_hook
        from airflow_provider_sms.state import alerts

        hook = get_sms_hook(self.sms_conn_id, **self.policy_kwargs)
        key, now = self.alert_key(context), alerts.utcnow()
        groups = alerts.AlertGroups(alert_store())
        try:
            resolution = groups.begin_resolution(
                key,
                self._numbers(hook),
                now,
                self.max_per_hour,
                quiet_until=lambda number: self._quiet_until(hook, [number], now).get(number),
            )
        except Exception as exc:  # the alert groups cannot be reached: nobody is told of a recovery
            self.log.warning("SMS alert %s: could not look for an alert to resolve (%s)", key, type(exc).__name__)
            return
        if resolution is None:
            self.log.info("SMS alert %s: nothing to resolve (it did not alert, or is being resolved)", key)
            return
        text = resolved_text(key, now, resolution.since, resolution.held_failures, self.default_tz)
        by_connection: dict[tuple[str, str | None], list[str]] = {}
        for number, conn_id, sender in resolution.now:
            by_connection.setdefault((conn_id or self.sms_conn_id, sender), []).append(number)
        try:
            for (conn_id, sender), numbers in by_connection.items():
                sender_hook = hook if conn_id == self.sms_conn_id else get_sms_hook(conn_id, **self.policy_kwargs)
                result = send_sms_once(
                    context,
                    sender_hook,
                    numbers,
                    text,
                    sender=sender,
                    key=f"notifier\x1fresolved\x1f{text}",
                    resend_in_doubt=self.resend_in_doubt,
                )
                self.log.info("SMS alert %s resolved: %s", key, result.summary())
        except Exception:  # keep the incident: a later success resolves it
            groups.store.delete(resolution.claim)
            raise
        groups.finish_resolution(resolution)
        if resolution.held:
            self.log.info("SMS alert %s: RESOLVED held for the digest of %d phone(s)", key, len(resolution.held))

    def _send_plain(self, context: Mapping[str, Any]) -> None:
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
            result = self._send_once(
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

    def __call__(self, *args: Any) -> None:
        """Render and send on a copy: rendering replaces the templated fields, and one notifier is often
        shared by many tasks (``default_args``) whose keys and texts differ."""
        BaseNotifier.__call__(copy.copy(self), *args)

    def _send_once(self, context: Mapping[str, Any], hook: Any, to: Any, text: str, **kwargs: Any) -> Any:
        """``send_sms_once``, or with ``deliver_within`` the delivery-based fallback (``triggers.fallback``)."""
        if self.deliver_within is None or kwargs.get("send_at") is not None:
            return send_sms_once(context, hook, to, text, **kwargs)
        from airflow_provider_sms.triggers.fallback import fallback_send

        return fallback_send(
            context,
            provider=hook.provider,
            conn_ids=[hook.conn_id, *self.fallback_conn_ids],
            to=to,
            text=text,
            sender=kwargs.get("sender"),
            deliver_within=self.deliver_within,
            escalation=self.escalation,
            poll_interval=self.delivery_poll_interval,
            hook_kwargs=self.policy_kwargs,
            key=kwargs.get("key"),
        )

    def notify(self, context: Context) -> None:
        self._send(context)

    async def async_notify(self, context: Context) -> None:
        """Send from the triggerer (a Deadline Alert) without blocking its event loop."""
        from asgiref.sync import sync_to_async

        # with deliver_within the send waits for delivery: in a thread of its own, not the shared one
        await sync_to_async(self._send, thread_sensitive=self.deliver_within is None)(context)


send_sms_notification = SmsNotifier


def alert_store() -> KeyStore:
    """Where alert groups live: Airflow Variables (tests replace this)."""
    from airflow_provider_sms.state.variables import VariableKeys

    return VariableKeys()


def is_success(context: Mapping[str, Any]) -> bool:
    """Whether a callback reports a success: a task's ``on_success_callback`` or a DAG's."""
    reason = context.get("reason")
    if reason is not None:  # a DAG callback says why it runs
        return str(reason) == "success"
    ti = context.get("ti") or context.get("task_instance")
    state = _get(ti, "state") if ti is not None else None
    return str(getattr(state, "value", state) or "").lower() == "success"


def failure_event(context: Mapping[str, Any], text: str) -> str | None:
    """Names one failure (task instance, try, text), so its callback running twice is one alert."""
    ti = context.get("ti") or context.get("task_instance")
    if ti is None or context.get("reason") is not None:
        return None
    parts = [_get(ti, name) for name in ("dag_id", "task_id", "map_index", "try_number")]
    return "\x1f".join(str(p) for p in [*parts, context.get("run_id") or _get(ti, "run_id"), text])


def failure_summary(context: Mapping[str, Any], text: str | None = None) -> str:
    """What a digest says of the latest alert: ``try 3 ValueError: disk full`` (or the given text)."""
    if text:
        return " ".join(text.split())[:120]
    ti = context.get("ti") or context.get("task_instance")
    exception = context.get("exception")
    parts = []
    if ti is not None and _get(ti, "try_number") is not None:
        parts.append(f"try {_get(ti, 'try_number')}")
    if exception is not None:
        parts.append(
            f"{type(exception).__name__}: {exception}" if isinstance(exception, BaseException) else str(exception)
        )
    elif context.get("deadline") is not None:
        parts.append("deadline missed")
    return " ".join(" ".join(parts).split())[:120]


def zone_of(number: str, default_tz: str | None = None) -> str | None:
    """The one zone a digest's times are given in for ``number`` (None: UTC)."""
    from airflow_provider_sms.core.localtime import zones_for

    try:
        zones, _rule = zones_for(number, default_tz=default_tz)
    except Exception:  # no zone known: times are given in UTC
        return None
    return zones[0] if len(zones) == 1 else None


def _clock(moment: datetime, zone: str | None) -> str:
    """``02:14`` in ``zone``, or ``02:14 UTC``."""
    if zone:
        import pendulum

        return str(pendulum.instance(moment).in_timezone(zone).strftime("%H:%M"))
    return moment.strftime("%H:%M UTC")


def resolved_text(key: str, now: datetime, since: datetime, held: int, zone: str | None = None) -> str:
    """``RESOLVED sms_alerting.load: succeeded at 02:31 after 7 more failures, failing since 02:14``."""
    more = f" after {held} more failure{'s' if held != 1 else ''}" if held else ""
    return fit_segments(f"RESOLVED {key}: succeeded at {_clock(now, zone)}{more}, failing since {_clock(since, zone)}")


def digest_text(digest: Digest) -> str:
    """One SMS for a phone's held alerts: ``sms_alerting.load: 7 more failures since 02:14, last: try 3
    ValueError...``; several keys are listed busiest first after a total."""
    zone = digest.zone

    def line(entry: Any) -> str:
        if entry.resolved:
            return f"RESOLVED {entry.key} at {_clock(entry.since, zone)}"
        noun = "failure" if entry.count == 1 else "failures"
        more = "more " if entry.alerted_before else ""
        label = " CRITICAL" if entry.critical else ""
        last = f", last: {entry.last}" if entry.last else ""
        return f"{entry.key}:{label} {entry.count} {more}{noun} since {_clock(entry.since, zone)}{last}"

    entries = sorted(digest.entries, key=lambda e: (e.resolved, -e.count, e.since))
    if len(entries) == 1:
        return fit_segments(line(entries[0]))
    failing = [e for e in entries if not e.resolved]
    since = min((e.since for e in failing), default=min(e.since for e in entries))
    head = (
        f"Airflow: {digest.alerts} alerts held on {len(failing)} keys since {_clock(since, zone)}. " if failing else ""
    )
    return fit_segments(head + "; ".join(line(e) for e in entries))


def send_due_digests(store: KeyStore | None = None, now: datetime | None = None) -> list[dict[str, Any]]:
    """Text each phone its digest of held alerts that are due (claimed: one process sends each), within
    the phone's ``max_per_hour``; returns what was sent (masked numbers, counts). Run it from the digest
    trigger (``triggers.digest``), or from a task on a schedule on Airflow 2.11."""
    from airflow_provider_sms.core.phone import mask_number
    from airflow_provider_sms.hooks import get_sms_hook
    from airflow_provider_sms.state import alerts

    groups = alerts.AlertGroups(store if store is not None else alert_store())
    now = now or alerts.utcnow()
    groups.sweep(now)
    sent = []
    for r in groups.due(now):
        digest = groups.claim_digest(r, now)
        if digest is None:
            continue
        if not groups.take_slot(digest.number, now, digest.max_per_hour, kind="digest"):
            logging.getLogger(__name__).info(
                "digest for %s waits for max_per_hour (next text at %s)",
                mask_number(digest.number),
                groups.slots_free_at(digest.number, now, digest.max_per_hour or 1).isoformat(),
            )
            groups.finish_digest(digest, now, sent=False)
            continue
        digest.zone = zone_of(digest.number, digest.default_tz)
        text = digest_text(digest)
        try:
            result = get_sms_hook(digest.conn_id).send_sms([digest.number], text, sender=digest.sender)
        except Exception as exc:  # kept for the next round
            logging.getLogger(__name__).warning(
                "digest for %s not sent: %s", mask_number(digest.number), type(exc).__name__
            )
            groups.finish_digest(digest, now, sent=False)
            continue
        groups.finish_digest(digest, now, sent=bool(result.accepted))
        sent.append(
            {
                "to": mask_number(digest.number),
                "keys": len(digest.entries),
                "alerts": digest.alerts,
                "accepted": bool(result.accepted),
            }
        )
    return sent
