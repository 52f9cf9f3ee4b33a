"""Following a send to the end: which recipients can be tracked, one polling step, and the summary.

Shared by ``SmsDeliverySensor`` (poke and reschedule modes) and ``SmsDeliveryTrigger`` (deferred), so
the three modes read and report delivery the same way. Nothing here speaks HTTP: a poll is one call to
the hook's ``get_delivery_reports`` (paced by the hook's client, as every request is).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_provider_sms.core.errors import SmsValidationError
from airflow_provider_sms.core.results import UNDELIVERED_STATUSES, DeliveryReport, SendResult


@dataclass
class Tracked:
    """The accepted recipients of one or more sends.

    :param by_id: provider message id -> recipient, for every recipient whose send returned an id.
    :param untracked: recipients accepted without a message id (Cellcast's chat API, say): no report
        can be asked for them, so they are listed apart and never waited for.
    :param last_status: the furthest status the provider reports: ``delivered``, or ``sent`` for a
        provider whose reports stop there (Cloudware). Reaching it ends the wait for a recipient.
    """

    provider: str
    by_id: dict[str, str] = field(default_factory=dict)
    untracked: list[str] = field(default_factory=list)
    last_status: str = "delivered"

    def settled(self, report: DeliveryReport | None) -> bool:
        """Whether nothing more will be learned about this message."""
        return report is not None and (report.final or report.status == self.last_status)


def tracked_from(results: Any, last_status: str = "delivered") -> Tracked:
    """Read a send's result (``SendResult``, its ``to_dict()``, or a list of them from mapped sends)."""
    items = results if isinstance(results, (list, tuple)) else [results]
    tracked: Tracked | None = None
    for item in items:
        data = item.to_dict() if isinstance(item, SendResult) else item
        if not isinstance(data, Mapping) or "accepted" not in data or "provider" not in data:
            raise SmsValidationError(
                "result must be what an SMS send returned (its XCom: a dict with provider and accepted), "
                f"not {type(item).__name__}"
            )
        if data.get("dry_run"):
            continue
        tracked = tracked or Tracked(str(data["provider"]), last_status=last_status)
        if data["provider"] != tracked.provider:
            raise SmsValidationError(
                f"results from {tracked.provider} and {data['provider']} cannot be followed with one connection"
            )
        for entry in data["accepted"] or []:
            to, message_id = str(entry.get("to") or ""), entry.get("message_id")
            if message_id:
                tracked.by_id[str(message_id)] = to
            else:
                tracked.untracked.append(to)
    if tracked is None:  # nothing but dry runs (or no result at all): nothing was sent
        provider = next((d.get("provider") for d in items if isinstance(d, Mapping)), None)
        return Tracked(str(provider or ""), last_status=last_status)
    return tracked


def merge_reports(
    known: Mapping[str, DeliveryReport], new: Iterable[DeliveryReport], tracked: Tracked
) -> dict[str, DeliveryReport]:
    """``known`` updated with ``new``: a final report is never replaced by a later non-final one, an
    ``unknown`` never replaces a known status, and reports for ids we did not send are ignored."""
    merged = dict(known)
    for report in new:
        if report.message_id not in tracked.by_id:
            continue
        old = merged.get(report.message_id)
        if old is not None and (old.final or report.status == "unknown"):
            continue
        if report.to is None:
            report = replace(report, to=tracked.by_id[report.message_id] or None)
        merged[report.message_id] = report
    return merged


def pending(tracked: Tracked, known: Mapping[str, DeliveryReport]) -> list[str]:
    """Message ids whose wait is not over."""
    return [m for m in tracked.by_id if not tracked.settled(known.get(m))]


def poll(hook: Any, tracked: Tracked, known: Mapping[str, DeliveryReport]) -> dict[str, DeliveryReport]:
    """Ask the provider about every message still pending; return the merged reports."""
    waiting = pending(tracked, known)
    if not waiting:
        return dict(known)
    return merge_reports(known, hook.get_delivery_reports(waiting), tracked)


def summary(tracked: Tracked, known: Mapping[str, DeliveryReport]) -> dict[str, Any]:
    """The sensor's return value: one report per tracked recipient and the numbers by outcome.

    ``delivered``: confirmed on the phone; ``undelivered``: failed, expired, rejected or opted out;
    ``sent``: handed on by a provider whose reports stop there (Cloudware); ``pending``: no final
    status yet (or nothing heard); ``untracked``: accepted without an id to follow.
    """
    reports = []
    delivered, undelivered, sent, waiting = [], [], [], []
    for message_id, to in tracked.by_id.items():
        report = known.get(message_id) or DeliveryReport(tracked.provider, message_id, to or None, "unknown")
        reports.append(report.to_dict())
        if report.status == "delivered":
            delivered.append(to)
        elif report.status in UNDELIVERED_STATUSES:
            undelivered.append(to)
        elif report.status == "sent" and tracked.last_status == "sent":
            sent.append(to)
        else:
            waiting.append(to)
    return {
        "provider": tracked.provider,
        "reports": reports,
        "delivered": delivered,
        "undelivered": undelivered,
        "sent": sent,
        "pending": waiting,
        "untracked": list(tracked.untracked),
    }
