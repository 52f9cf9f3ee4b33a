"""``SmsHITLTrigger``: wait for a human's answer, given in Airflow's UI or by a text message (Airflow 3.1+).

It backs the ``operators.hitl`` family. A reply counts when it comes from one of the phones that were
asked, was received by the provider after the question was accepted (``since``, which the operator sets
to the moment the provider accepted the text less ``REPLY_SKEW``, one second, for a provider clock
behind ours), is meant for this question, and names exactly one option (a whole word, any case, or one
of its aliases: ``YES`` for Approve, say).

Which question a reply is meant for is decided the same way by every triggerer, through the open
questions and reply claims kept in the metadata database (``state.questions``): each question
carries a four-digit reference unique among the questions open to its phone; a reply naming it is
meant for it, a reply holding any other four-digit number is not, and a reply naming none answers the one
question open to its phone when it arrived, or, with several open, none of them (the question with
the lowest reference then texts the phone once, listing the open references). Each reply is claimed by
at most one question before its answer is recorded through Airflow's own human-in-the-loop response
call. The event says who answered (``responded_by_user``: "SMS from +614*****002", masked); Airflow's
UI answers exactly as for its own operators. A text arriving after an answer in the UI does nothing
(Airflow refuses a second response). The inbox is read like every other inbound trigger's (one
shared poll per connection on Airflow 3.3); before 3.3 the trigger also checks for a UI answer every
``poll_interval``, as Airflow's ``HITLTrigger`` does. Only ``timeout_datetime`` applies the defaults:
a provider fault (an inbox that cannot be read, a stream that ended) never resolves a question; the
trigger logs why and keeps waiting for the UI until its own timeout. Sync work (Airflow's API calls,
the registry, number parsing, the notice's send) runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from airflow_provider_sms._compat import TriggerEvent
from airflow_provider_sms.core.errors import SmsError
from airflow_provider_sms.core.phone import mask_number
from airflow_provider_sms.core.results import InboundMessage
from airflow_provider_sms.core.timestamps import parse_timestamp
from airflow_provider_sms.state.questions import NOBODY, Question, Questions, open_before, registry_available
from airflow_provider_sms.triggers.inbound import InboxWaiter, SmsTriggerEvent, filter_for
from airflow_provider_sms.triggers.inbox import Inbox, InboxPoll

_REFERENCE = re.compile(r"(?<!\d)\d{4}(?!\d)")


def reference_for(ti_id: str) -> str:
    """The preferred four-digit reference of a task instance's question (the operator makes it unique)."""
    return f"{UUID(str(ti_id)).int % 10_000:04d}"


def named_references(text: str) -> set[str]:
    return set(_REFERENCE.findall(text))


def sms_responder(phone: str) -> dict[str, str]:
    """Who answered, as the event and the task's result say it (the number masked)."""
    masked = mask_number(phone)
    return {"id": f"sms:{masked}", "name": f"SMS from {masked}"}


@dataclass
class Verdict:
    """What a reply means for one question: ``mine`` (with the options chosen), or why not."""

    kind: str  # mine | other | ignored | taken | ambiguous
    chosen: list[str] = field(default_factory=list)
    open_refs: list[str] = field(default_factory=list)
    notify: bool = False


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
    :param since: ISO-8601 time from which a reply may answer (the question's acceptance less
        ``REPLY_SKEW``); earlier replies never count.
    :param timeout_datetime: ISO-8601 time after which the defaults apply.
    :param poll_interval: seconds between inbox polls (and UI checks before Airflow 3.3), at least 1.
    :param ref: the question's reference (``reference_for(ti_id)`` when not given).
    :param registered_at: ISO-8601 time the question was registered as open (its key in the registry).

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
        registered_at: str | None = None,
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
        self.registered_at = registered_at

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
            "registered_at": self.registered_at,
        }

    # --- what Airflow's human-in-the-loop API says and records (called in a worker thread) ---------

    @staticmethod
    def _ui_checks_needed() -> bool:
        """Before Airflow 3.3 a UI answer reaches a deferred task only through its trigger."""
        import importlib.util

        return importlib.util.find_spec("airflow.triggers.shared_stream") is None

    @staticmethod
    async def _call(function: Any, *args: Any, **kwargs: Any) -> Any:
        """Run sync work (Airflow's API calls, the registry) off the event loop, one call at a time."""
        from asgiref.sync import sync_to_async

        return await sync_to_async(function)(*args, **kwargs)

    def _detail(self, ti_id: str) -> Any:
        from airflow.sdk.execution_time.hitl import get_hitl_detail_content_detail

        return get_hitl_detail_content_detail(ti_id=UUID(ti_id))

    def _on_record(self) -> TriggerEvent | None:
        """The answer Airflow holds for the request, if any (given in the UI, or earlier by SMS)."""
        resp = self._detail(self.ti_id)
        if not (resp.response_received and resp.chosen_options):
            return None
        user = resp.responded_by_user
        responder = {"id": user.id, "name": user.name} if user is not None else None
        return self._event(list(resp.chosen_options), resp.params_input or {}, resp.responded_at, responder)

    def _record(self, chosen: list[str], params_input: dict[str, Any]) -> datetime:
        from airflow.sdk.execution_time.hitl import update_hitl_detail_response

        resp = update_hitl_detail_response(ti_id=UUID(self.ti_id), chosen_options=chosen, params_input=params_input)
        return resp.responded_at or datetime.now(timezone.utc)

    def _event(
        self, chosen: list[str], params_input: dict[str, Any], at: Any, responder: dict[str, str] | None
    ) -> TriggerEvent:
        return SmsTriggerEvent(
            {
                "chosen_options": chosen,
                "params_input": params_input,
                "responded_at": at,
                "responded_by_user": responder,
                "timedout": responder is None,
            }
        )

    def _answer_by_sms(self, message: InboundMessage, chosen: list[str]) -> TriggerEvent:
        responder = sms_responder(message.from_number)
        params_input = dict(self.params_input)
        try:
            at = self._record(chosen, params_input)
        except Exception as err:  # Airflow refuses a second response: the UI answered first
            on_record = self._on_record()
            if on_record is None:
                raise
            self.log.info("an SMS answer came after the request was answered; ignored (%s)", err)
            return on_record
        self.log.info("answered %s by %s", chosen, responder["name"])
        return self._event(chosen, params_input, at, responder)

    def _at_timeout(self) -> TriggerEvent:
        """What Airflow's own trigger does at the timeout: an answer just in, the defaults, or a failure."""
        on_record = self._on_record()
        if on_record is not None:
            return on_record
        if self.defaults is None:
            return SmsTriggerEvent(
                {
                    "error": "The timeout has passed, and the response has not yet been received.",
                    "error_type": "timeout",
                }
            )
        at = self._record(self.defaults, self.params_input)
        self.log.info("no answer before the timeout; the defaults %s apply", self.defaults)
        return self._event(self.defaults, self.params_input, at, None)

    # --- which question a reply answers (called in a worker thread) ------------------------------

    def _registries(self, phones: Sequence[str]) -> dict[str, Questions]:
        if not registry_available():
            return {}
        registries = {phone: Questions(self.sms_conn_id, phone) for phone in phones}
        registered = self.registered_at or self.since
        asked = parse_timestamp(registered) if registered else None
        timeout = parse_timestamp(self.timeout_datetime) if self.timeout_datetime else None
        if asked is not None:
            for registry in registries.values():
                registry.ensure(self.ref, self.ti_id, asked, timeout)
        return registries

    def _still_open(self, question: Question, moment: datetime) -> bool:
        """Whether another question was still unanswered when a reply stamped ``moment`` arrived."""
        try:
            detail = self._detail(question.ti_id)
        except Exception as err:  # cannot tell: count it as open (a reply then answers nothing)
            # not found: its task instance was cleared or deleted, a stale entry
            return not ("not found" in str(err).lower() or "not_found" in str(err).lower())
        responded = getattr(detail, "responded_at", None)
        return not (getattr(detail, "response_received", False) and responded is not None and responded <= moment)

    def _judge(self, message: InboundMessage, registry: Questions | None) -> Verdict:
        chosen = chosen_options(message.text, self.answers, multiple=self.multiple)
        if chosen is None:
            return Verdict("ignored")
        named = named_references(message.text)
        if registry is None:  # no shared registry (Airflow before 3.3): the reference alone decides
            return Verdict("mine", chosen) if not named or self.ref in named else Verdict("other")
        when = message.received_at
        claimants = registry.claimants(message.provider, message.message_id, when)
        if any(c not in (self.ti_id, NOBODY) for c in claimants):
            return Verdict("taken")  # another question holds it
        others = [q for q in open_before(registry.open(), when) if q.ti_id != self.ti_id]
        if named:
            if self.ref not in named:
                return Verdict("other")
            others = [q for q in others if q.ref in named]
        others = [q for q in others if self._still_open(q, when)]
        if others:
            refs = sorted({self.ref, *(q.ref for q in others)})
            registry.claim(message.provider, message.message_id, when, NOBODY)
            notify = refs[0] == self.ref and registry.take_notice(
                message.provider, message.message_id, when, self.ti_id
            )
            return Verdict("ambiguous", open_refs=refs, notify=notify)
        if NOBODY in claimants:
            return Verdict("taken")  # judged ambiguous by a question that saw more open than this one does
        if not registry.claim(message.provider, message.message_id, when, self.ti_id):
            return Verdict("taken")
        return Verdict("mine", chosen)

    def _notice(self, phone: str, refs: list[str]) -> None:
        """Text the phone once: several questions are open, and which references to name."""
        from airflow_provider_sms.hooks import get_sms_hook

        word = next((w for w, option in self.answers.items() if option == self.options[0]), self.options[0])
        text = f"{len(refs)} questions are waiting for your reply; add its reference, e.g. {word.upper()} {refs[0]}. "
        text += "Open: " + ", ".join(refs)
        try:  # best effort, and never sent twice: a failed notice is logged, not retried
            get_sms_hook(self.sms_conn_id).send_sms([phone], text)
        except Exception as err:
            self.log.warning("could not text %s the open references (%s)", mask_number(phone), type(err).__name__)
            return
        self.log.info(
            "a reply from %s named no reference with %d questions open; told it", mask_number(phone), len(refs)
        )

    def _close(self, registries: Mapping[str, Questions]) -> None:
        for registry in registries.values():
            try:
                registry.close(self.ti_id)
            except Exception as err:
                self.log.warning("could not remove the question from the registry (%s)", type(err).__name__)

    # --- waiting ----------------------------------------------------------------------------------

    async def _wait(
        self, polls: AsyncIterator[InboxPoll], inbox: Inbox, *, shared: bool
    ) -> AsyncIterator[TriggerEvent]:
        deadline = parse_timestamp(self.timeout_datetime) if self.timeout_datetime else None
        if not await self._first(polls, inbox, self._left(deadline), shared=shared):
            yield await self._call(self._at_timeout)
            return
        sms_readable = inbox.failure is None
        if not sms_readable:
            self.log.warning("replies cannot be read (%s); waiting for an answer in the UI only", inbox.failure)
        flt = await filter_for(from_numbers=self.from_numbers, default_region=inbox.region)
        senders = flt.from_numbers if sms_readable else frozenset()
        cutoff = parse_timestamp(self.since) if self.since else datetime.now(timezone.utc)
        registries: dict[str, Questions] = {}
        try:
            if senders:
                registries = await self._call(self._registries, sorted(senders))
            candidates: list[InboundMessage] = []
            if sms_readable:
                try:
                    candidates = await self._read_back(inbox, cutoff, senders) or []
                except SmsError as err:
                    sms_readable = False
                    self.log.warning("replies cannot be read (%s); waiting for an answer in the UI only", err)
            async for event in self._answers(polls, candidates, senders, sms_readable, deadline, cutoff, registries):
                yield event
                return
        finally:
            if registries:
                await self._call(self._close, registries)

    async def _answers(
        self,
        polls: AsyncIterator[InboxPoll],
        candidates: list[InboundMessage],
        senders: frozenset[str],
        sms_readable: bool,
        deadline: datetime | None,
        cutoff: datetime,
        registries: Mapping[str, Questions],
    ) -> AsyncIterator[TriggerEvent]:
        check_ui = self._ui_checks_needed()
        loop = asyncio.get_running_loop()
        next_ui_check = loop.time()
        judged: set[str] = set()
        while True:
            retry: list[InboundMessage] = []
            for message in sorted(candidates, key=lambda m: m.received_at):
                if message.received_at < cutoff or message.message_id in judged:
                    continue  # sent before the question was accepted, or already judged
                try:
                    verdict = await self._call(self._judge, message, registries.get(message.from_number))
                    judged.add(message.message_id)
                    if verdict.kind == "mine":
                        yield await self._call(self._answer_by_sms, message, verdict.chosen)
                        return
                    if verdict.kind == "ambiguous" and verdict.notify:
                        await self._call(self._notice, message.from_number, verdict.open_refs)
                except Exception as err:  # the registry or Airflow's API failed: judge it again later
                    self.log.warning("could not judge a reply now (%s: %s); will try again", type(err).__name__, err)
                    judged.discard(message.message_id)
                    retry.append(message)
                    continue
                if verdict.kind != "mine":
                    self.log.info(
                        "a reply from %s does not answer this question (%s)",
                        mask_number(message.from_number),
                        verdict.kind,
                    )
            if check_ui and loop.time() >= next_ui_check:
                on_record = await self._call(self._on_record)
                if on_record is not None:
                    yield on_record
                    return
                next_ui_check = loop.time() + self.poll_interval
            left = self._left(deadline)
            if left == 0.0:
                yield await self._call(self._at_timeout)
                return
            waits = [w for w in (left, next_ui_check - loop.time() if check_ui else None) if w is not None]
            if retry:
                waits.append(self.poll_interval)
            timeout = max(min(waits), 0.0) if waits else None
            candidates = retry
            if not sms_readable:
                await (asyncio.sleep(timeout) if timeout is not None else asyncio.Event().wait())
                continue
            try:
                poll = await self._next_poll(polls, timeout)
            except Exception as err:  # the stream ended: a provider fault never answers the question
                sms_readable = False
                self.log.warning(
                    "the inbox stream ended (%s); waiting for an answer in the UI until the timeout", type(err).__name__
                )
                continue
            if poll is None:
                continue
            if poll.error and not poll.retryable:
                sms_readable = False
                self.log.warning("replies cannot be read (%s); waiting for an answer in the UI only", poll.error)
                continue
            candidates = retry + poll.from_any(senders)
