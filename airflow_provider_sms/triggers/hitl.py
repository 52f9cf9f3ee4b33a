"""``SmsHITLTrigger``: wait for a human's answer, given in Airflow's UI or by a text message (Airflow 3.1+).

It backs the ``operators.hitl`` family. A reply counts when it comes from one of the phones that were
asked, after they were asked, is meant for this question, and names exactly one option (a whole word,
any case, or one of its aliases: ``YES`` for Approve, say). Each question carries a four-digit
reference: a reply holding it is meant for it, a reply holding another is not, and a reply holding none
answers the latest question its phone had been asked (as far as this triggerer knows: all of them on
Airflow 3.3's shared inbox, only this one before). The answer is then
recorded through Airflow's own human-in-the-loop response call, with ``answered_by`` saying it came by
SMS and from which (masked) number, so the UI shows it. Other replies are logged and ignored; the first
answer wins, and a text arriving after an answer in the UI does nothing (Airflow refuses a second
response). The inbox is read like every other inbound trigger's (one shared poll per connection on
Airflow 3.3); before 3.3 the trigger also checks for a UI answer every ``poll_interval``, as Airflow's
``HITLTrigger`` does (from 3.3 a UI answer resumes the task directly). At ``timeout_datetime`` the
standard defaults apply.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from airflow_provider_sms._compat import TriggerEvent
from airflow_provider_sms.core.errors import SmsError
from airflow_provider_sms.core.results import InboundMessage
from airflow_provider_sms.triggers.inbound import InboxWaiter
from airflow_provider_sms.triggers.inbox import Inbox, InboxPoll

ANSWERED_BY = "answered_by"  # the request's param that says an answer came by SMS, and from whom
_REFERENCE = re.compile(r"(?<!\d)\d{4}(?!\d)")


def reference_for(ti_id: str) -> str:
    """The four-digit reference of a task instance's question (stable for the task instance)."""
    return f"{UUID(str(ti_id)).int % 10_000:04d}"


def meant_for(message: InboundMessage, ref: str, pending: Mapping[str, datetime]) -> bool:
    """Whether a reply answers the question ``ref`` among its phone's ``pending`` ones (ref -> asked at)."""
    named = set(_REFERENCE.findall(message.text))
    if named:
        return ref in named  # a reference other than ours: meant for another question
    asked_before = [(at, r) for r, at in pending.items() if at <= message.received_at]
    return not asked_before or max(asked_before)[1] == ref


def answer_pattern(answers: Mapping[str, str]) -> list[tuple[re.Pattern[str], str]]:
    """One case-insensitive whole-word pattern per reply word, with the option it stands for."""
    return [(re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.IGNORECASE), option) for word, option in answers.items()]


def chosen_options(text: str, answers: Mapping[str, str], *, multiple: bool) -> list[str] | None:
    """The options a reply names, or None when it names none (or several, where one is asked for)."""
    named = sorted({option for pattern, option in answer_pattern(answers) if pattern.search(text)})
    if not named or (len(named) > 1 and not multiple):
        return None
    return named


class SmsHITLTrigger(InboxWaiter):
    """Fire once a human answered ``ti_id``'s request, in the UI or by SMS, or when it timed out.

    :param ti_id: the waiting task instance.
    :param sms_conn_id: the connection whose inbox receives the replies.
    :param from_numbers: the phones that were asked (E.164); only their replies count.
    :param answers: reply word -> option (each option's own name included), matched as whole words.
    :param options: the request's options.
    :param defaults: the options taken at the timeout (None: the timeout fails the task).
    :param multiple: whether several options may be chosen.
    :param params_input: the values recorded with an SMS answer (the request's params at their defaults).
    :param since: ISO-8601 time the question went out; earlier replies never count.
    :param timeout_datetime: ISO-8601 time after which the defaults apply.
    :param poll_interval: seconds between inbox polls (and UI checks before Airflow 3.3).
    :param ref: the question's reference (``reference_for(ti_id)`` when not given).

    Events are Airflow's own human-in-the-loop payloads, so the operator's ``execute_complete`` is
    the standard one.
    """

    def __init__(
        self,
        *,
        ti_id: str,
        sms_conn_id: str,
        from_numbers: Sequence[str],
        answers: Mapping[str, str],
        options: Sequence[str],
        defaults: Sequence[str] | None = None,
        multiple: bool = False,
        params_input: Mapping[str, Any] | None = None,
        since: str | None = None,
        timeout_datetime: str | None = None,
        poll_interval: float = 5.0,
        ref: str | None = None,
    ) -> None:
        super().__init__()
        self._set_filter_args(sms_conn_id, from_numbers, None, poll_interval)
        self.ti_id = str(ti_id)
        self.answers = dict(answers)
        self.options = list(options)
        self.defaults = list(defaults) if defaults is not None else None
        self.multiple = multiple
        self.params_input = dict(params_input or {})
        self.since = since
        self.timeout_datetime = timeout_datetime
        self.ref = ref or reference_for(self.ti_id)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return self._classpath(), {
            "ti_id": self.ti_id,
            "sms_conn_id": self.sms_conn_id,
            "from_numbers": self.from_numbers,
            "answers": self.answers,
            "options": self.options,
            "defaults": self.defaults,
            "multiple": self.multiple,
            "params_input": self.params_input,
            "since": self.since,
            "timeout_datetime": self.timeout_datetime,
            "poll_interval": self.poll_interval,
            "ref": self.ref,
        }

    # --- what Airflow's human-in-the-loop API says and records ------------------------------------

    @staticmethod
    def _ui_checks_needed() -> bool:
        """Before Airflow 3.3 a UI answer reaches a deferred task only through its trigger."""
        import importlib.util

        return importlib.util.find_spec("airflow.triggers.shared_stream") is None

    async def _answer_on_record(self) -> TriggerEvent | None:
        """The answer Airflow holds for the request, if any (given in the UI, or earlier by SMS)."""
        from airflow.sdk.execution_time.hitl import get_hitl_detail_content_detail
        from asgiref.sync import sync_to_async

        resp = await sync_to_async(get_hitl_detail_content_detail)(ti_id=UUID(self.ti_id))
        if not (resp.response_received and resp.chosen_options):
            return None
        user = resp.responded_by_user
        responder = {"id": user.id, "name": user.name} if user is not None else None
        return self._event(list(resp.chosen_options), resp.params_input or {}, resp.responded_at, responder)

    async def _record(self, chosen: list[str], params_input: dict[str, Any]) -> datetime:
        from airflow.sdk.execution_time.hitl import update_hitl_detail_response
        from asgiref.sync import sync_to_async

        resp = await sync_to_async(update_hitl_detail_response)(
            ti_id=UUID(self.ti_id), chosen_options=chosen, params_input=params_input
        )
        return resp.responded_at or datetime.now(timezone.utc)

    def _event(
        self, chosen: list[str], params_input: dict[str, Any], at: Any, responder: dict[str, str] | None
    ) -> TriggerEvent:
        return TriggerEvent(
            {
                "chosen_options": chosen,
                "params_input": params_input,
                "responded_at": at,
                "responded_by_user": responder,
                "timedout": responder is None,
            }
        )

    async def _answer_by_sms(self, message: InboundMessage, chosen: list[str]) -> TriggerEvent:
        from airflow_provider_sms.core.phone import mask_number

        params_input = dict(self.params_input)
        who = f"SMS from {mask_number(message.from_number)}"
        if ANSWERED_BY in params_input:
            params_input[ANSWERED_BY] = who
        try:
            at = await self._record(chosen, params_input)
        except Exception as err:  # Airflow refuses a second response: the UI answered first
            on_record = await self._answer_on_record()
            if on_record is None:
                raise
            self.log.info("an SMS answer came after the request was answered; ignored (%s)", err)
            return on_record
        self.log.info("answered %s by %s", chosen, who)
        return self._event(chosen, params_input, at, {"id": f"sms:{message.from_number}", "name": who})

    async def _at_timeout(self) -> TriggerEvent:
        """What Airflow's own trigger does at the timeout: an answer just in, the defaults, or a failure."""
        on_record = await self._answer_on_record()
        if on_record is not None:
            return on_record
        if self.defaults is None:
            return TriggerEvent(
                {
                    "error": "The timeout has passed, and the response has not yet been received.",
                    "error_type": "timeout",
                }
            )
        at = await self._record(self.defaults, self.params_input)
        self.log.info("no answer before the timeout; the defaults %s apply", self.defaults)
        return self._event(self.defaults, self.params_input, at, None)

    # --- waiting ----------------------------------------------------------------------------------

    async def _wait(
        self, polls: AsyncIterator[InboxPoll], inbox: Inbox, *, shared: bool
    ) -> AsyncIterator[TriggerEvent]:

        from airflow_provider_sms.core.inbound import build_filter
        from airflow_provider_sms.core.timestamps import parse_timestamp

        deadline = parse_timestamp(self.timeout_datetime) if self.timeout_datetime else None
        if not await self._first(polls, inbox, self._left(deadline), shared=shared):
            yield await self._at_timeout()
            return
        sms_readable = inbox.failure is None
        if not sms_readable:
            self.log.warning("replies cannot be read (%s); waiting for an answer in the UI only", inbox.failure)
        flt = build_filter(from_numbers=self.from_numbers, since=self.since, default_region=inbox.region)
        senders = flt.from_numbers if sms_readable else frozenset()
        asked_at = flt.since or datetime.now(timezone.utc)
        try:
            for phone in senders:
                inbox.ask(phone, self.ref, asked_at)
            candidates: list[InboundMessage] = []
            if sms_readable:
                try:
                    candidates = await self._read_back(inbox, flt.since, senders) or []
                except SmsError as err:
                    sms_readable = False
                    self.log.warning("replies cannot be read (%s); waiting for an answer in the UI only", err)
            async for event in self._answers(polls, inbox, candidates, senders, sms_readable, deadline):
                yield event
                return
        finally:
            for phone in senders:
                inbox.answered(phone, self.ref)

    async def _answers(
        self,
        polls: AsyncIterator[InboxPoll],
        inbox: Inbox,
        candidates: list[InboundMessage],
        senders: frozenset[str],
        sms_readable: bool,
        deadline: datetime | None,
    ) -> AsyncIterator[TriggerEvent]:
        import asyncio

        check_ui = self._ui_checks_needed()
        loop = asyncio.get_running_loop()
        next_ui_check = loop.time()
        while True:
            for message in sorted(candidates, key=lambda m: m.received_at):
                if not meant_for(message, self.ref, inbox.questions.get(message.from_number, {})):
                    self.log.info("a reply from an asked phone is meant for another question; ignored")
                    continue
                chosen = chosen_options(message.text, self.answers, multiple=self.multiple)
                if chosen is None:
                    self.log.info("a reply from an asked phone names no single option; ignored")
                    continue
                yield await self._answer_by_sms(message, chosen)
                return
            if check_ui and loop.time() >= next_ui_check:
                on_record = await self._answer_on_record()
                if on_record is not None:
                    yield on_record
                    return
                next_ui_check = loop.time() + self.poll_interval
            left = self._left(deadline)
            if left == 0.0:
                yield await self._at_timeout()
                return
            waits = [w for w in (left, next_ui_check - loop.time() if check_ui else None) if w is not None]
            poll = await self._next_poll(polls, max(min(waits), 0.0) if waits else None)
            candidates = []
            if poll is None:
                continue
            if poll.error and sms_readable and not poll.retryable:
                sms_readable = False
                self.log.warning("replies cannot be read (%s); waiting for an answer in the UI only", poll.error)
            if sms_readable:
                candidates = poll.from_any(senders)
