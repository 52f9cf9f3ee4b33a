"""Human-in-the-loop operators a person can answer by text (Airflow 3.1+).

``SmsHITLOperator``, ``SmsApprovalOperator`` and ``SmsHITLBranchOperator`` are Airflow's own
``HITLOperator``, ``ApprovalOperator`` and ``HITLBranchOperator`` that also text the question to the
given phones and accept an SMS reply as the answer. They write the request as the standard operators
do, send the text through the same hook send as ``SendSmsOperator``, and wait deferred (no worker slot)
on ``SmsHITLTrigger`` for whichever comes first: an answer in Airflow's UI or a reply by SMS. Then the
standard ``execute_complete`` runs: approve lets the downstream tasks run, reject skips them (or
fails, with ``fail_on_reject``), a branch follows the option. On Airflow before 3.1 they raise a clear
error when created.

They add no field to the request: answering in the UI works exactly as with the standard operators.
An answer by SMS is recorded as Airflow records any answer (chosen options, time), and the event's
``responded_by_user`` ("SMS from +614*****002", masked) says who answered: it is in the task's result
(XCom) and its HITL summary. Before texting, the question is registered as open to each phone with a
reference no other open question to that phone holds (``state.questions``, in the metadata
database); the registration is removed when the task resumes. The text goes through the task's send
ledger (``send_sms_once``), with the reference noted there first: a retry (a worker killed after
texting, before deferring) takes over the earlier try's question and its reference, and texts nobody
again, so a reply to the text the person received still answers it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from airflow_provider_sms._compat import AirflowFailException, BaseOperator, Context
from airflow_provider_sms.core.errors import SmsError, SmsValidationError
from airflow_provider_sms.core.inbound import REPLY_SKEW
from airflow_provider_sms.core.templated import list_from_template
from airflow_provider_sms.state.questions import Questions, registry_available
from airflow_provider_sms.triggers.hitl import reference_for

try:
    from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLBranchOperator, HITLOperator

    HITL_AVAILABLE = True
except Exception:  # Airflow before 3.1 (or without the standard provider's human-in-the-loop support)
    HITL_AVAILABLE = False

log = logging.getLogger(__name__)

# Reply words understood for an approval, besides the options' own names.
APPROVAL_WORDS = {"yes": "Approve", "y": "Approve", "ok": "Approve", "no": "Reject", "n": "Reject"}


def reply_words(options: Sequence[str], extra: Mapping[str, str] | None) -> dict[str, str]:
    """Reply word (lower case) -> option: each option's own name, plus ``extra``; unknown options refused."""
    words = {option.lower(): option for option in options}
    for word, option in (extra or {}).items():
        if option not in options:
            raise SmsValidationError(f"sms_answers maps {word!r} to {option!r}, which is not one of {list(options)}")
        words[str(word).strip().lower()] = option
    return words


QUESTION_NOTE = "hitl-question"  # the send ledger's note of the question's reference, try and time


def _earlier_question(context: Context) -> tuple[Any, dict[str, Any] | None]:
    """The task's send ledger (None without one) and the question an earlier try of it registered:
    ``{"ref", "ti", "asked"}``, or None on a first try (or when the note cannot be read)."""
    from airflow_provider_sms.state.ledger import ledger_for

    try:
        ledger = ledger_for(context)
        note = ledger.view().notes.get(QUESTION_NOTE) if ledger is not None else None
    except Exception as err:  # the send then goes without the ledger too (``send_sms_once``)
        log.warning("could not read the send ledger (%s)", type(err).__name__)
        return None, None
    if not isinstance(note, dict):
        return ledger, None  # a first try (or a note this code did not write)
    try:
        ref, ti, asked = str(note["ref"]), str(note["ti"]), datetime.fromisoformat(str(note["asked"]))
    except (TypeError, KeyError, ValueError):
        return ledger, None
    if not (len(ref) == 4 and ref.isdigit()) or asked.tzinfo is None:
        return ledger, None
    return ledger, {"ref": ref, "ti": ti, "asked": asked}


class _SmsAnswerable(BaseOperator):
    """What the SMS human-in-the-loop operators add to Airflow's: the text out, and SMS answers back.

    A ``BaseOperator`` itself (first in each operator's bases) so Airflow wraps its ``__init__`` as it
    wraps every operator's.

    :param respect_opt_out: do not text the question to numbers in the opt-out register (reported
        ``unsubscribed``); False only for questions to your own staff who asked to be paged regardless.
    """

    sms_template_fields: Sequence[str] = ("sms_conn_id", "to", "message", "sender")
    default_words: Mapping[str, str] = {}

    def __init__(
        self,
        *,
        sms_conn_id: str,
        to: Any,
        message: str | None = None,
        sender: str | None = None,
        sms_answers: Mapping[str, str] | None = None,
        poll_interval: float = 5.0,
        respect_opt_out: bool = True,
        **kwargs: Any,
    ) -> None:
        from airflow_provider_sms.core.inbound import check_poll_interval

        super().__init__(**kwargs)
        self.respect_opt_out = respect_opt_out
        self.sms_conn_id = sms_conn_id
        self.to = to
        self.message = message
        self.sender = sender
        self.poll_interval = check_poll_interval(poll_interval)
        self.sms_answers = reply_words(self.options, {**self.default_words, **(sms_answers or {})})  # type: ignore[attr-defined]

    def execute(self, context: Context) -> Any:
        from airflow.sdk.execution_time.hitl import upsert_hitl_detail

        from airflow_provider_sms.core.phone import prepare_recipients
        from airflow_provider_sms.hooks import get_sms_hook
        from airflow_provider_sms.notifications.once import send_sms_once
        from airflow_provider_sms.notifications.sms import hitl_message
        from airflow_provider_sms.state.questions import choose_reference
        from airflow_provider_sms.triggers.hitl import SmsHITLTrigger

        op: Any = self
        ti_id = context["task_instance"].id
        upsert_hitl_detail(
            ti_id=ti_id,
            options=op.options,
            subject=op.subject,
            body=op.body,
            defaults=op.defaults,
            multiple=op.multiple,
            params=op.serialized_params,
            assigned_users=op.assigned_users,
        )
        timeout = datetime.now(timezone.utc) + op.response_timeout if op.response_timeout else None
        op.hitl_summary_extra["timeout_datetime"] = timeout.isoformat() if timeout else None
        registered_at = datetime.now(timezone.utc)
        try:
            hook = get_sms_hook(self.sms_conn_id, respect_opt_out=self.respect_opt_out)
            phones, invalid = prepare_recipients(list_from_template(self.to), hook.default_region)
            if invalid or not phones:
                raise SmsValidationError(f"cannot text the question to {[r['to'] for r in invalid] or 'nobody'}")
        except SmsValidationError as err:
            raise AirflowFailException(f"{type(err).__name__}: {err}") from err
        registries = [Questions(self.sms_conn_id, phone) for phone in phones] if registry_available() else []
        ledger, earlier = _earlier_question(context)
        preferred = earlier["ref"] if earlier else reference_for(str(ti_id))
        if earlier:  # a retry: the question an earlier try registered (and maybe texted) is this one
            registered_at = earlier["asked"]
        ref = preferred
        if registries:
            try:
                ref = choose_reference(
                    registries,
                    str(ti_id),
                    registered_at,
                    timeout,
                    preferred=preferred,
                    earlier=[earlier["ti"]] if earlier else (),
                )
            except Exception as err:  # the registry cannot be used: the reference alone decides, as before 3.3
                op.log.warning("could not register the question as open (%s); its reference may not be unique", err)
        if ledger is not None and (not earlier or (earlier["ref"], earlier["ti"]) != (ref, str(ti_id))):
            try:  # before the text goes out, so a retry after a crash finds the reference it carried
                ledger.note(QUESTION_NOTE, {"ref": ref, "ti": str(ti_id), "asked": registered_at.isoformat()})
            except Exception as err:  # the send's claim likely fails too; else a retry asks with a new reference
                op.log.warning("could not record the question's reference (%s)", type(err).__name__)
        since = datetime.now(timezone.utc)
        try:
            text = self.message or hitl_message(op, context, ref=ref)
            # Once per reference across tries: a retry (a worker killed after texting) texts nobody again.
            result = send_sms_once(context, hook, phones, text, sender=self.sender, key=f"hitl-question {ref}")
        except SmsValidationError as err:
            self._close_question(str(ti_id), phones)
            raise AirflowFailException(f"{type(err).__name__}: {err}") from err
        except SmsError as err:  # the question can still be answered in the UI
            op.log.warning("could not text the question (%s); it can still be answered in the UI", err)
        else:
            # A reply counts from the moment the provider accepted the text (less a small clock skew);
            # for a text an earlier try got accepted, from when that try registered the question.
            reused = earlier is not None and earlier["ref"] == ref
            since = (registered_at if reused else datetime.now(timezone.utc)) - REPLY_SKEW
            op.log.info("asked by SMS (reference %s): %s", ref, result.summary())
        for notifier in op.notifiers:
            notifier(context)
        op.defer(
            trigger=SmsHITLTrigger(
                ti_id=str(ti_id),
                sms_conn_id=self.sms_conn_id,
                from_numbers=phones,
                answers=self.sms_answers,
                options=op.options,
                defaults=op.defaults,
                multiple=op.multiple,
                params_input=op.params.dump(),
                since=since.isoformat(),
                timeout_datetime=timeout.isoformat() if timeout else None,
                poll_interval=self.poll_interval,
                ref=ref,
                registered_at=registered_at.isoformat(),
            ),
            method_name="execute_complete",
            kwargs={"sms_phones": phones},
        )

    def _close_question(self, ti_id: str, phones: Sequence[str]) -> None:
        """Remove the question from the open ones (the trigger does too; either may come first)."""
        if not registry_available():
            return
        for phone in phones:
            try:
                Questions(self.sms_conn_id, phone).close(ti_id)
            except Exception as err:  # the registry is housekeeping: never fail the answer for it
                self.log.warning("could not remove the question from the open ones (%s)", type(err).__name__)

    def execute_complete(self, context: Context, event: dict[str, Any], sms_phones: Sequence[str] = ()) -> Any:
        self._close_question(str(context["task_instance"].id), sms_phones)
        responder = event.get("responded_by_user") if isinstance(event, dict) else None
        if isinstance(responder, dict) and str(responder.get("id", "")).startswith("sms:"):
            self.log.info("answered by %s", responder.get("name"))
        return super().execute_complete(context, event)  # type: ignore[misc]


_SMS_DOC = """
    :param sms_conn_id: the connection that sends the question and lists the replies (Cellcast or
        Cloudware). (templated)
    :param to: the phones to ask (and the only ones whose replies count). (templated)
    :param message: the text; defaults to the subject, the words to reply with, the question's
        four-digit reference (unique among the questions open to that phone) and the link to the
        request's page, in at most two SMS parts. A reply naming the reference ("YES 4821") answers
        that question; a reply naming none answers the one question open to its phone, or, with several
        open, none (the phone is then told the open references). Only replies the provider received
        after it accepted the question count. (templated)
    :param sender: sender ID; defaults to the connection's. (templated)
    :param sms_answers: more reply words, each mapped to an option (``{"later": "Reject"}``); every
        option's own name is understood, whole words, any case.
    :param poll_interval: seconds between inbox polls (shared with every other waiter on the inbox); at
        least 1.
"""


def _unavailable(name: str) -> type:
    class Unavailable:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError(f"{name} needs Airflow 3.1 or later (human-in-the-loop operators)")

    Unavailable.__name__ = Unavailable.__qualname__ = name
    return Unavailable


if HITL_AVAILABLE:

    class SmsHITLOperator(_SmsAnswerable, HITLOperator):  # type: ignore[misc]
        __doc__ = "``HITLOperator`` that also texts the question and takes an SMS reply as the answer.\n" + _SMS_DOC

        template_fields: Sequence[str] = (*HITLOperator.template_fields, *_SmsAnswerable.sms_template_fields)

    class SmsApprovalOperator(_SmsAnswerable, ApprovalOperator):  # type: ignore[misc]
        __doc__ = (
            "``ApprovalOperator`` that also texts the question; a reply of APPROVE (or YES, Y, OK) approves, "
            "REJECT (or NO, N) rejects.\n" + _SMS_DOC
        )

        template_fields: Sequence[str] = (*ApprovalOperator.template_fields, *_SmsAnswerable.sms_template_fields)
        default_words = APPROVAL_WORDS

    class SmsHITLBranchOperator(_SmsAnswerable, HITLBranchOperator):  # type: ignore[misc]
        __doc__ = "``HITLBranchOperator`` that also texts the question and takes an SMS reply as the answer.\n" + (
            _SMS_DOC
        )

        template_fields: Sequence[str] = (*HITLBranchOperator.template_fields, *_SmsAnswerable.sms_template_fields)

else:
    SmsHITLOperator = _unavailable("SmsHITLOperator")  # type: ignore[misc,assignment]
    SmsApprovalOperator = _unavailable("SmsApprovalOperator")  # type: ignore[misc,assignment]
    SmsHITLBranchOperator = _unavailable("SmsHITLBranchOperator")  # type: ignore[misc,assignment]
