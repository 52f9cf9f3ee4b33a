"""Provider-neutral delivery plans: failover across connections and personalized sends.

Nothing here speaks HTTP: it calls hook methods, so operators and the notifier share one
implementation. A recipient moves to the next connection only when its failure's error class says
the provider certainly did not process it (``fail_over``: auth, credit, outage, rate limit, a country
the provider does not serve); ``delivery_unknown`` and per-recipient rejections never fail over, so
no one is texted twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from airflow_provider_sms.core.errors import SmsError, SmsValidationError
from airflow_provider_sms.core.phone import split_recipients
from airflow_provider_sms.core.results import SendResult
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
