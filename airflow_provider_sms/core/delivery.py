"""Provider-neutral delivery plans: failover across connections, personalized sends, and resuming a
send that an earlier try started.

Nothing here speaks HTTP: it calls hook methods, so operators and the notifier share one
implementation. ``send_once`` reads what earlier tries of the task recorded in the send ledger (any
object with ``state.ledger.SendLedger``'s ``view`` and ``journal``) and sends only to recipients no
earlier try got accepted for; recipients whose request may have gone out without an answer are in
doubt and are not resent unless asked (``resend_in_doubt``). A recipient moves to the next connection
only when its failure's error class says the provider certainly did not process it (``fail_over``:
auth, credit, outage, rate limit, a country the provider does not serve); ``delivery_unknown`` and
per-recipient rejections never fail over, so no one is texted twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, Protocol

from airflow_provider_sms.core.errors import SmsError, SmsValidationError
from airflow_provider_sms.core.phone import normalize_number, split_recipients
from airflow_provider_sms.core.pipeline import Journal, journaling
from airflow_provider_sms.core.results import SendResult, SentCheck
from airflow_provider_sms.core.validation import SendAt

log = logging.getLogger(__name__)


class Sender(Protocol):
    provider: str

    def send_sms(
        self, to: Any, message: str, *, sender: str | None = None, send_at: SendAt = None, dry_run: bool = False
    ) -> SendResult: ...


def _send_catching(
    hook: Sender, to: Sequence[str], message: str, sender: str | None, send_at: SendAt, dry_run: bool
) -> SendResult:
    """Run one send; a whole-send failure comes back as its attached result instead of an exception.

    :raises SmsValidationError: the input cannot be sent through this hook (nothing was sent).
    """
    try:
        return hook.send_sms(list(to), message, sender=sender, send_at=send_at, dry_run=dry_run)
    except SmsValidationError:
        raise
    except SmsError as err:
        if err.result is None:
            raise
        log.warning("%s: the whole send failed: %s", hook.provider, err)
        return err.result


def send_with_failover(
    hooks: Sequence[Callable[[], Sender]],
    to: Any,
    message: str,
    *,
    sender: str | None = None,
    send_at: SendAt = None,
    dry_run: bool = False,
) -> SendResult:
    """Send through the first connection, then hand recipients it did not process to the next ones.

    :param hooks: factories for the primary hook and its fallbacks, in order (built only when needed).
    :param dry_run: plan the primary's send only (what fails over is only known by sending).
    :return: one result: accepted entries from fallbacks carry ``provider``; rejected entries are the
        final state of each recipient. ``result.provider`` is the primary's.
    """
    primary = hooks[0]()
    combined = _send_catching(primary, split_recipients(to), message, sender, send_at, dry_run)
    for make_hook in hooks[1:] if not dry_run else ():
        pending = combined.fail_over_numbers()
        if not pending:
            break
        fallback = make_hook()
        log.warning("failing over %d recipient(s) from %s to %s", len(pending), combined.provider, fallback.provider)
        try:
            outcome = _send_catching(fallback, pending, message, sender, send_at, dry_run)
        except SmsValidationError as err:  # this fallback cannot take the send; the next one may
            log.warning("%s cannot take the recipients: %s", fallback.provider, err)
            continue
        moved = set(pending)
        combined.rejected = [r for r in combined.rejected if r["to"] not in moved]
        outcome.accepted = [{**a, "provider": fallback.provider} for a in outcome.accepted]
        combined.merge(outcome)
    return combined


def message_rows(messages: Iterable[Any]) -> list[tuple[str, str, str | None]]:
    """Read personalized messages as ``(recipient, text, tz)`` rows, one per recipient, in order.

    Each item is ``{"to": ..., "message": ..., "tz"?: ...}`` or a ``(to, message)`` pair (a SQL row, say);
    ``to`` may hold several numbers.
    """
    rows: list[tuple[str, str, str | None]] = []
    for index, item in enumerate(messages):
        tz = None
        if isinstance(item, dict):
            to, text, tz = item.get("to"), item.get("message"), item.get("tz")
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            to, text = item
        else:
            raise SmsValidationError(
                f"messages[{index}] must be {{'to': ..., 'message': ...}} or a (to, message) pair, not {item!r}"
            )
        if not to or text is None or not str(text).strip():
            raise SmsValidationError(f"messages[{index}] needs both a recipient and a non-empty message")
        rows.extend((number, str(text), str(tz) if tz else None) for number in split_recipients(to))
    if not rows:
        raise SmsValidationError("messages is empty: nothing to send")
    return rows


def group_messages(messages: Iterable[Any]) -> dict[str, list[str]]:
    """Group personalized messages by text: ``{text: [recipients]}`` in first-seen order."""
    groups: dict[str, list[str]] = {}
    for to, text, _tz in message_rows(messages):
        groups.setdefault(text, []).append(to)
    return groups


def send_grouped(
    groups: dict[str, list[str]],
    send: Callable[[list[str], str], SendResult],
    *,
    max_workers: int = 4,
) -> list[SendResult]:
    """Send each text to its recipients (one provider batch per text), at most ``max_workers`` at once.

    :return: one result per text, in the order of ``groups``.
    """
    items = list(groups.items())
    if max_workers <= 1 or len(items) <= 1:
        return [send(to, text) for text, to in items]
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="sms-personalized") as pool:
        return list(pool.map(lambda item: send(item[1], item[0]), items))


def combine(parts: Sequence[SendResult], provider: str) -> SendResult:
    """One result from several sends (the groups of a personalized send)."""
    combined = SendResult(provider)
    for part in parts:
        combined.merge(part)
    return combined


CLOCK_SKEW = timedelta(minutes=2)  # a provider's clock may be this far behind ours

Confirm = Callable[[str, list[str], str, datetime], "SentCheck | None"]


class Ledger(Protocol):
    """What ``send_once`` needs of a send ledger (``state.ledger.SendLedger``)."""

    def view(self) -> Any: ...

    def journal(self, message: str, conn_id: str) -> Journal: ...

    def earlier_requests(self, message: str) -> int: ...


def send_once(
    ledger: Ledger,
    to: Any,
    message: str,
    send: Callable[[list[str]], SendResult],
    *,
    provider: str,
    region: str | None = None,
    resend_in_doubt: bool = False,
    confirm: Confirm | None = None,
    key: str | None = None,
) -> SendResult:
    """Send ``message`` to the recipients of ``to`` that no earlier try got accepted for, journaling
    this try's requests in ``ledger``; return one result for all tries.

    Recipients an earlier try got accepted (by any connection) come back as accepted with that try's
    message id and ``conn_id``; those refused for a reason a resend would meet again (an invalid
    number, a rejection, an opt-out) come back as they were; those whose request may have gone out
    without an answer are ``in_doubt`` and not resent (unless ``resend_in_doubt``); the rest, never
    tried or certainly not processed (an outage, a rate limit, auth, credit), are sent now.

    Before that, recipients in doubt are settled where the provider can be asked (``confirm``: the
    connection whose request it was, the numbers, the text, and a moment a little before the claim):
    those it lists as sent are accepted, those its complete listing does not hold are sent now, and
    what it cannot tell stays in doubt.

    :param send: sends to a list of numbers (failover included); called at most once.
    :param region: the region national numbers are read in (the primary connection's).
    :param confirm: ``(conn_id, numbers, message, since) -> SentCheck | None``, usually the hook's
        ``confirm_sent``; None leaves every recipient in doubt as it is.
    :param key: what names this send in the ledger (default: the text): a sender whose text changes
        between tries but must still go once (a notifier, a question) passes a stable key.
    """
    key = message if key is None else key
    view = ledger.view()
    earlier = view.of(key)
    carried = SendResult(provider)
    carried.requests = ledger.earlier_requests(key)  # the merged result counts every try's requests
    todo: list[str] = []
    doubt: list[str] = []
    seen: set[str] = set()
    for raw in split_recipients(to) if earlier else ():  # a first try has nothing to compare with
        try:
            number = normalize_number(raw, region)
        except SmsError:
            todo.append(raw)  # the send rejects it again, before any request
            continue
        if number in seen:
            continue
        seen.add(number)
        person = earlier.get(number)
        if person is None:
            todo.append(number)
        elif person.accepted is not None:
            carried.accepted.append({"to": number, **person.accepted})
        elif person.code == "unsubscribed":
            carried.unsubscribed.append(number)
        elif person.settled:
            carried.add_rejected(number, str(person.code), str(person.reason or "refused by an earlier try"))
        elif person.in_doubt:
            doubt.append(number)
        else:
            todo.append(number)
    if earlier:
        log.info(
            "%s: earlier tries got %d recipient(s) accepted and %d refused; %d in doubt; sending to %d",
            provider,
            len(carried.accepted),
            len(carried.rejected) + len(carried.unsubscribed),
            len(doubt),
            len(todo) + (len(doubt) if resend_in_doubt else 0),
        )
    if doubt and confirm is not None and not resend_in_doubt:
        settled, doubt = _settle(ledger, key, message, doubt, earlier, confirm, provider)
        carried.accepted.extend(settled.accepted)
        todo += settled.in_doubt  # here: the numbers the provider certainly did not take
    if resend_in_doubt and doubt:
        log.warning("%s: resending to %d recipient(s) in doubt (resend_in_doubt=True)", provider, len(doubt))
        todo, doubt = todo + doubt, []
    carried.in_doubt = doubt
    if doubt:
        _log_doubt(provider, doubt, earlier)
    if not earlier:
        todo = split_recipients(to)  # the send normalizes and de-duplicates them
    if not todo:
        return _counted(carried, SendResult(provider), view.stats_of(key))
    try:
        with journaling(lambda conn_id: ledger.journal(key, conn_id)):
            fresh = send(todo)
    except SmsError as err:
        if err.result is not None:
            err.result = _with_doubt(_counted(carried.merge(err.result), err.result, view.stats_of(key)))
        elif carried.accepted or carried.in_doubt:
            err.result = carried
        raise
    return _with_doubt(_counted(carried.merge(fresh), fresh, view.stats_of(key)))


def _settle(
    ledger: Ledger, key: str, message: str, doubt: list[str], earlier: Any, confirm: Confirm, provider: str
) -> tuple[SendResult, list[str]]:
    """Ask each connection about its recipients in doubt; return (accepted, and in ``in_doubt`` the
    numbers to send after all) and those still in doubt. What the provider confirms is journaled."""
    settled = SendResult(provider)
    still: list[str] = []
    by_conn: dict[str | None, list[str]] = {}
    for number in doubt:
        by_conn.setdefault(earlier[number].claimed_by, []).append(number)
    for conn_id, numbers in by_conn.items():
        moments = [earlier[n].claimed_at for n in numbers if earlier[n].claimed_at is not None]
        if conn_id is None or not moments:
            still += numbers
            continue
        since = min(moments) - CLOCK_SKEW - timedelta(seconds=1)  # claims are stamped to the second
        try:
            check = confirm(conn_id, numbers, message, since)
        except SmsError as err:
            log.warning("%s: could not ask %s about %d recipient(s) in doubt: %s", provider, conn_id, len(numbers), err)
            check = None
        if check is None:
            still += numbers
            continue
        found = SendResult(provider)
        for number in numbers:
            if number in check.found:
                found.add_accepted(number, check.found[number])
            elif number in check.absent:
                settled.in_doubt.append(number)
            else:
                still.append(number)
        found.mark_connection(conn_id)
        settled.accepted.extend(found.accepted)
        log.info(
            "%s: of %d recipient(s) in doubt, %s lists %d as sent and certainly did not take %d",
            provider,
            len(numbers),
            conn_id,
            len(found.accepted),
            len([n for n in numbers if n in check.absent and n not in check.found]),
        )
        if found.accepted:
            journal = ledger.journal(key, conn_id)
            journal.after(0, found)
            try:
                journal.end()
            except Exception as exc:  # the next try asks again
                log.warning("%s: could not record what %s confirmed (%s)", provider, conn_id, type(exc).__name__)
    return settled, still


def _counted(result: SendResult, fresh: SendResult, earlier: Any) -> SendResult:
    """Parts and encoding for every accepted recipient: one text, so earlier tries' ones count as this
    try's do (or as the ledger recorded them, when this try got nobody accepted)."""
    if fresh.accepted and fresh.segments:
        result.segments = fresh.segments // len(fresh.accepted) * len(result.accepted)
        result.encoding = fresh.encoding
    elif result.accepted and getattr(earlier, "parts", None):
        result.segments = int(earlier.parts) * len(result.accepted)
        result.encoding = result.encoding or earlier.encoding
    return result


def _log_doubt(provider: str, doubt: list[str], earlier: Any) -> None:
    """Say which requests the recipients in doubt were in: the provider-side references, where a request
    carried one (Clickatell's ``clientMessageId``, which its status callbacks echo)."""
    refs = sorted({str(earlier[n].ref) for n in doubt if n in earlier and getattr(earlier[n], "ref", None)})
    if refs:
        shown = ", ".join(refs[:5]) + (f" and {len(refs) - 5} more" if len(refs) > 5 else "")
        log.warning(
            "%s: %d recipient(s) in doubt were in request(s) with reference %s: look them up with the provider",
            provider,
            len(doubt),
            shown,
        )


def _with_doubt(result: SendResult) -> SendResult:
    """List this try's ``delivery_unknown`` recipients in ``in_doubt`` too (they stay in ``rejected``)."""
    for entry in result.rejected:
        if entry["code"] == "delivery_unknown" and entry["to"] not in result.in_doubt:
            result.in_doubt.append(entry["to"])
    return result
