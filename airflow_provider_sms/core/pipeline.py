"""The one send pipeline every provider send and every dry run goes through.

prepare (validate text, sender and schedule; normalize and de-duplicate numbers) -> filter destinations
-> split into batches -> build each batch's request -> send over a bounded pool -> parse each answer
into per-recipient outcomes -> one ``SendResult``. A provider supplies only a payload builder (our
``Outgoing`` message and a batch of E.164 numbers -> a ``Call``) and an answer parser (the batch and
the provider's reply -> a ``SendResult`` of that batch); a dry run is the same path with the network
step skipped, so it cannot disagree with a real send.

With a *journal* (``journaling``: the send ledger of ``state.ledger``, or anything with its four
methods), each request is claimed durably before it goes out and each outcome recorded after, so a
later try of the same task knows who was texted; the journal batches its writes.

A batch that fails does not stop the others: its recipients are rejected with the error's code. Only
an authentication failure stops the send, since every later batch would fail the same way. When every
batch failed, the first error is raised with the whole result attached as ``error.result``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from airflow_provider_sms.core.encoding import SegmentInfo
from airflow_provider_sms.core.errors import (
    SmsAuthError,
    SmsDeliveryUnknownError,
    SmsError,
    SmsProviderUnavailableError,
    SmsUnsupportedDestinationError,
    SmsValidationError,
)
from airflow_provider_sms.core.phone import prepare_recipients
from airflow_provider_sms.core.results import SendResult
from airflow_provider_sms.core.validation import (
    SendAt,
    resolve_send_time,
    validate_message,
    validate_sender,
    validate_text,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Outgoing:
    """One message, validated, in our vocabulary: what a payload builder reads.

    :param message: the text exactly as it goes on the wire.
    :param sender: the sender ID to use (the call's, else the connection's), or None for the default.
    :param send_at: when the provider should deliver (aware UTC), or None for now.
    :param segments: the text's encoding and parts; None where SMS length rules do not apply (MMS).
    """

    message: str
    sender: str | None = None
    send_at: datetime | None = None
    segments: SegmentInfo | None = None


@dataclass(frozen=True)
class Call:
    """One HTTP request, as a payload builder describes it."""

    method: str
    path: str
    json: Any = None
    data: Any = None
    files: Any = None
    headers: Mapping[str, str] | None = None
    expect: str = "json"
    ref: str | None = None  # the provider-side reference this request carries (Clickatell's clientMessageId)


class Reply(Protocol):
    """What the transport hands a parser: the 2xx answer of one call (``core.http.HttpReply``)."""

    status: int
    body: Any
    text: str
    attempts: int
    endpoint: str


Builder = Callable[[Sequence[str], Outgoing], Call]
Parser = Callable[[Sequence[str], Any], SendResult]
Transport = Callable[[Call], Reply]
DestinationRule = Callable[[str], "str | None"]


class Journal(Protocol):
    """Records a send as it goes, somewhere that outlives the process (``state.ledger.Journal``)."""

    def begin(self, batches: Sequence[Sequence[str]], width: int = 1) -> None:
        """A send of ``batches`` starts, ``width`` requests at a time."""
        ...

    def before(self, index: int, ref: str | None = None) -> None:
        """Return once batch ``index`` (whose request carries ``ref``) is durably claimed (its request may go
        out); raise if it cannot be."""
        ...

    def after(self, index: int, part: SendResult) -> None: ...

    def end(self) -> None: ...


# conn_id -> the journal of a send through that connection; set by whoever owns the ledger (an
# operator's try), read by ``SmsHook.deliver`` in the same thread, so hook signatures stay as they are.
_journals: ContextVar[Callable[[str], Journal] | None] = ContextVar("sms_journals", default=None)


@contextmanager
def journaling(journal_for: Callable[[str], Journal] | None) -> Iterator[None]:
    """Within this block (in this thread), sends journal through ``journal_for(conn_id)``."""
    token = _journals.set(journal_for)
    try:
        yield
    finally:
        _journals.reset(token)


def current_journal(conn_id: str) -> Journal | None:
    """The journal a send through ``conn_id`` should write to here, if any."""
    journal_for = _journals.get()
    return journal_for(conn_id) if journal_for is not None else None


@dataclass
class Prepared:
    """A send after validation: the message, the numbers to send to, and who was refused already."""

    outgoing: Outgoing
    numbers: list[str]
    result: SendResult


def chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    if size < 1:
        raise ValueError("batch size must be at least 1")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def prepare(
    to: str | int | Iterable[Any] | None,
    message: str,
    *,
    provider: str,
    sender: str | None = None,
    default_sender: str | None = None,
    send_at: SendAt = None,
    region: str | None = None,
    destination: DestinationRule | None = None,
    check_text: bool = True,
    max_segments: int,
    max_chars: int | None = None,
) -> Prepared:
    """Validate everything a send needs before any request, and sort the recipients.

    :param destination: returns why this provider cannot send to a number (or None when it can);
        such numbers are rejected as ``unsupported_destination``.
    :param check_text: apply the SMS length rules (``max_segments``); otherwise only ``max_chars``.
    :raises SmsValidationError: empty or too long text, bad sender or schedule, or no valid recipient.
    """
    if check_text:
        info: SegmentInfo | None = validate_message(message, max_segments=max_segments)
    else:
        validate_text(message, max_chars=max_chars)
        info = None
    chosen_sender = validate_sender(sender) if sender not in (None, "") else default_sender
    when = resolve_send_time(send_at)
    numbers, rejected = prepare_recipients(to, region)
    if not numbers:
        detail = "; ".join(f"{r['to']}: {r['reason']}" for r in rejected[:5]) or "none was given"
        raise SmsValidationError(f"no valid recipient ({detail})", provider=provider)
    result = SendResult(provider)
    for entry in rejected:
        result.add_rejected(entry["to"], entry["code"], entry["reason"])
    if destination is not None:
        served = []
        for number in numbers:
            refusal = destination(number)
            if refusal is None:
                served.append(number)
            else:
                result.add_rejected(number, SmsUnsupportedDestinationError.code, refusal)
        numbers = served
    return Prepared(Outgoing(message, chosen_sender, when, info), numbers, result)


def run(
    prepared: Prepared,
    build: Builder,
    parse: Parser,
    *,
    batch_size: int,
    transport: Transport | None,
    max_workers: int = 1,
    redact: Callable[[str], str] = str,
    journal: Journal | None = None,
) -> SendResult:
    """Batch, build, send (unless ``transport`` is None: a dry run), parse and merge.

    Each batch's request is built just before it is sent (a builder that refuses a batch sends nothing
    for it; a dry run builds every one). Results are merged in batch order whatever order the calls
    finish in.
    Every text that came from the provider (reasons, ids, error messages) goes through ``redact``
    before it reaches a log line, an error or the result, so an echoed token never gets further.
    With a ``journal``, no request goes out before ``journal.before`` returned for its batch (a batch
    the journal cannot claim is not sent: ``provider_unavailable``, safe to retry), and every outcome
    is handed to ``journal.after``.

    :raises SmsError: the first batch's error when no batch succeeded, with ``error.result`` set.
    """
    result = prepared.result
    outgoing = prepared.outgoing
    batches = list(chunked(prepared.numbers, batch_size))
    if transport is None:
        for batch in batches:
            build(batch, outgoing)  # a builder that refuses its input fails the dry run as it would the send
        result.dry_run = True
        for number in prepared.numbers:
            result.add_accepted(number)
        result.requests += len(batches)
        _count_segments(result, outgoing)
        return result
    errors: list[SmsError | None] = [None] * len(batches)
    auth_failure: list[SmsAuthError] = []  # set once; every later batch would fail the same way

    def send(index: int) -> SendResult:
        batch = batches[index]
        part = SendResult(result.provider)
        if auth_failure:
            errors[index] = auth_failure[0]
            for number in batch:
                part.add_rejected(number, SmsAuthError.code, "not attempted: the provider refused the credentials")
            return part
        try:
            call = build(batch, outgoing)
        except Exception as exc:  # nothing was sent for this batch
            err = exc if isinstance(exc, SmsError) else SmsValidationError(f"could not build the request: {exc!r}")
            errors[index] = err
            for number in batch:
                part.add_rejected(number, err.code, str(err))
            return part
        if journal is not None:
            try:
                journal.before(index, call.ref)
            except Exception as exc:  # the claim was not recorded, so the request must not go out
                reason = f"not sent: the send ledger could not record it ({type(exc).__name__})"
                log.warning("%s: %s", result.provider, reason)
                errors[index] = SmsProviderUnavailableError(reason, provider=result.provider)
                for number in batch:
                    part.add_rejected(number, SmsProviderUnavailableError.code, reason)
                return part
        reply: Reply | None = None
        try:
            reply = transport(call)
            part = one_outcome_each(batch, parse(batch, reply))
        except SmsError as err:  # from the transport, or a parser reading an error out of a 2xx answer
            err.redact(redact)
            errors[index] = err
            if isinstance(err, SmsAuthError):
                auth_failure.append(err)
            log.warning("%s: a batch of %d recipient(s) failed: %s", result.provider, len(batch), err)
            for number in batch:
                part.add_rejected(number, err.code, str(err))
        except Exception as exc:  # a parser bug after the request went out must not lose who was texted
            reason = f"unexpected {type(exc).__name__} reading the answer; not resent"
            errors[index] = SmsDeliveryUnknownError(reason, provider=result.provider)
            log.exception("%s: could not read the answer for a batch of %d", result.provider, len(batch))
            part = SendResult(result.provider)
            for number in batch:
                part.add_rejected(number, SmsDeliveryUnknownError.code, reason)
        part.requests = reply.attempts if reply is not None else _attempts_of(errors[index])
        _count_segments(part, outgoing)
        part = _redacted(part, redact)
        if journal is not None:
            journal.after(index, part)
        return part

    if journal is not None:
        journal.begin(batches, max(max_workers, 1))
    try:
        if max_workers <= 1 or len(batches) <= 1:
            for index in range(len(batches)):
                result.merge(send(index))
        else:
            with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=f"sms-{result.provider}") as pool:
                for part in pool.map(send, range(len(batches))):  # in batch order, each merged as it comes
                    result.merge(part)
    finally:
        if journal is not None:
            try:
                journal.end()
            except Exception as exc:  # the next try will hold these recipients in doubt, not resend them
                log.warning("%s: the send ledger could not record the last outcomes (%s)", result.provider, exc)
    first = errors[0]
    if batches and first is not None and all(errors):
        first.result = result
        raise first
    return result


def one_outcome_each(batch: Sequence[str], parsed: SendResult) -> SendResult:
    """Exactly one outcome per recipient of the batch, whatever the answer said.

    A parser reports what the provider's answer says; this keeps the result true: numbers that were not
    in the batch are dropped, a number named twice with the same outcome counts once, a number given
    conflicting outcomes, or none at all, is ``delivery_unknown`` (the request went out, so it may
    have been sent, and it is never resent).
    """
    named = [e["to"] for e in parsed.accepted] + [e["to"] for e in parsed.rejected] + parsed.unsubscribed
    if named == list(batch) or (len(named) == len(batch) and set(named) == set(batch)):
        return parsed  # the usual answer: every number of the batch, once
    members = set(batch)
    outcomes: dict[str, list[tuple[str, Any]]] = {}
    for entry in parsed.accepted:
        outcomes.setdefault(entry["to"], []).append(("accepted", entry))
    for entry in parsed.rejected:
        outcomes.setdefault(entry["to"], []).append(("rejected", entry))
    for number in parsed.unsubscribed:
        outcomes.setdefault(number, []).append(("unsubscribed", number))
    result = SendResult(parsed.provider)
    for number in batch:
        kinds = {kind for kind, _ in outcomes.get(number, ())}
        if len(kinds) != 1:
            why = "named it with conflicting outcomes" if kinds else "did not name this number"
            result.add_rejected(
                number, SmsDeliveryUnknownError.code, f"the provider's answer {why}; it may have been sent"
            )
            continue
        kind, entry = outcomes[number][0]
        if kind == "accepted":
            result.accepted.append(entry)
        elif kind == "rejected":
            result.rejected.append(entry)
        else:
            result.unsubscribed.append(number)
    dropped = len(set(outcomes) - members)
    if dropped:
        log.warning("%s: the answer named %d number(s) that were not sent; ignored", parsed.provider, dropped)
    return result


def _redacted(result: SendResult, redact: Callable[[str], str]) -> SendResult:
    for entry in result.accepted:
        if entry.get("message_id"):
            entry["message_id"] = redact(entry["message_id"])
    for entry in result.rejected:
        entry["reason"] = redact(entry["reason"])
    return result


def _attempts_of(error: SmsError | None) -> int:
    return error.attempts if error is not None else 0


def _count_segments(result: SendResult, outgoing: Outgoing) -> None:
    if outgoing.segments is not None and result.accepted:
        result.segments = outgoing.segments.segments * len(result.accepted)
        result.encoding = outgoing.segments.encoding
