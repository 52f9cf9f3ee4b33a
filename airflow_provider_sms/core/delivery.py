"""Provider-neutral delivery plans: failover across connections, personalized sends, dry runs.

Nothing here speaks HTTP: it calls hook methods through small callables, so operators and the
notifier share one implementation. A recipient moves to the next connection only when its failure
means the provider did not process it (auth, credit, outage, rate limit); ``delivery_unknown`` and
per-recipient rejections never fail over, so no one is texted twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from airflow_provider_sms.core.encoding import count_segments
from airflow_provider_sms.core.errors import (
    SmsAuthError,
    SmsError,
    SmsInsufficientCreditError,
    SmsProviderUnavailableError,
    SmsRateLimitedError,
    SmsValidationError,
)
from airflow_provider_sms.core.phone import prepare_recipients, split_recipients
from airflow_provider_sms.core.results import SendResult

log = logging.getLogger(__name__)

# Failures that prove the provider did not process the recipient: safe to try elsewhere or later.
NOT_PROCESSED_CODES = frozenset(
    {
        SmsAuthError.code,
        SmsInsufficientCreditError.code,
        SmsProviderUnavailableError.code,
        SmsRateLimitedError.code,
    }
)
RETRYABLE_CODES = frozenset({SmsProviderUnavailableError.code, SmsRateLimitedError.code})


class Sender(Protocol):
    provider: str

    def send_sms(self, to: Any, message: str, *, sender: str | None = None) -> SendResult: ...


def _send_catching(hook: Sender, to: Sequence[str], message: str, sender: str | None) -> SendResult:
    """Run one send; a whole-send failure comes back as its attached result instead of an exception."""
    try:
        return hook.send_sms(list(to), message, sender=sender)
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
) -> SendResult:
    """Send through the first connection, then hand recipients it did not process to the next ones.

    :param hooks: factories for the primary hook and its fallbacks, in order (built only when needed).
    :return: one result: accepted entries from fallbacks carry ``provider``; rejected entries are the
        final state of each recipient. ``result.provider`` is the primary's.
    """
    primary = hooks[0]()
    combined = _send_catching(primary, split_recipients(to), message, sender)
    for make_hook in hooks[1:]:
        pending = [r["to"] for r in combined.rejected if r["code"] in NOT_PROCESSED_CODES]
        if not pending:
            break
        fallback = make_hook()
        log.warning("failing over %d recipient(s) from %s to %s", len(pending), combined.provider, fallback.provider)
        outcome = _send_catching(fallback, pending, message, sender)
        moved = set(pending)
        combined.rejected = [
            r for r in combined.rejected if r["to"] not in moved or r["code"] not in NOT_PROCESSED_CODES
        ]
        combined.accepted.extend({**a, "provider": fallback.provider} for a in outcome.accepted)
        combined.rejected.extend(outcome.rejected)
        combined.unsubscribed.extend(outcome.unsubscribed)
        combined.requests += outcome.requests
    return combined


def group_messages(messages: Iterable[Any]) -> dict[str, list[str]]:
    """Group personalized messages by text: ``{text: [recipients]}`` in first-seen order.

    Each item is ``{"to": ..., "message": ...}`` or a ``(to, message)`` pair (a SQL row, say).
    """
    groups: dict[str, list[str]] = {}
    for index, item in enumerate(messages):
        if isinstance(item, dict):
            to, text = item.get("to"), item.get("message")
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            to, text = item
        else:
            raise SmsValidationError(
                f"messages[{index}] must be {{'to': ..., 'message': ...}} or a (to, message) pair, not {item!r}"
            )
        if not to or text is None or not str(text).strip():
            raise SmsValidationError(f"messages[{index}] needs both a recipient and a non-empty message")
        groups.setdefault(str(text), []).extend(split_recipients(to))
    if not groups:
        raise SmsValidationError("messages is empty: nothing to send")
    return groups


def send_grouped(
    groups: dict[str, list[str]],
    send: Callable[[list[str], str], SendResult],
    provider: str,
    *,
    max_workers: int = 4,
) -> SendResult:
    """Send each text to its recipients (one provider batch per text), at most ``max_workers`` at once."""
    combined = SendResult(provider)
    items = list(groups.items())
    if max_workers <= 1 or len(items) <= 1:
        parts = [send(to, text) for text, to in items]
    else:
        with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="sms-personalized") as pool:
            parts = list(pool.map(lambda item: send(item[1], item[0]), items))
    for part in parts:
        combined.merge(part)
    return combined


def plan_dry_run(
    groups: dict[str, list[str]],
    *,
    provider: str,
    default_region: str | None,
    max_segments: int,
) -> dict[str, Any]:
    """What a send would do, without sending: normalized and rejected numbers, encoding and segments."""
    from airflow_provider_sms.core.validation import validate_message

    messages = []
    total = 0
    for text, recipients in groups.items():
        validate_message(text, max_segments=max_segments)
        info = count_segments(text)
        numbers, rejected = prepare_recipients(recipients, default_region)
        total += info.segments * len(numbers)
        messages.append(
            {
                "recipients": numbers,
                "rejected": rejected,
                "encoding": info.encoding,
                "characters": info.characters,
                "segments_per_message": info.segments,
                "segments": info.segments * len(numbers),
            }
        )
    return {"dry_run": True, "provider": provider, "messages": messages, "total_segments": total}
