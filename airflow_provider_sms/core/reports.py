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


def _sent_results(results: Any) -> list[Mapping[str, Any]]:
    """The results of real sends (not dry runs) among ``results``, as dicts, checked for shape."""
    items = results if isinstance(results, (list, tuple)) else [results]
    found = []
    for item in items:
        data = item.to_dict() if isinstance(item, SendResult) else item
        if not isinstance(data, Mapping) or "accepted" not in data or "provider" not in data:
            raise SmsValidationError(
                "result must be what an SMS send returned (its XCom: a dict with provider and accepted), "
                f"not {type(item).__name__}"
            )
        if not data.get("dry_run"):
            found.append(data)
    return found


def connections_in(results: Any, default_conn_id: str) -> list[str]:
    """The connections that accepted the messages of a send's result(s), first seen first.

    Each accepted entry names its ``conn_id`` (a failed-over message was accepted by a fallback); one
    without it (a result from an older version) counts as ``default_conn_id``.
    """
    found: dict[str, None] = {}
    for data in _sent_results(results):
        for entry in data["accepted"] or []:
            found[str(entry.get("conn_id") or default_conn_id)] = None
    return list(found) or [default_conn_id]


def tracked_from(
    results: Any, last_status: str = "delivered", *, conn_id: str | None = None, default_conn_id: str | None = None
) -> Tracked:
    """Read a send's result (``SendResult``, its ``to_dict()``, or a list of them from mapped sends).

    :param conn_id: follow only the messages this connection accepted (entries without ``conn_id``
        belong to ``default_conn_id``); None follows them all, which must then be one provider's.
    """
    sent = _sent_results(results)
    providers = sorted({str(data["provider"]) for data in sent})
    if len(providers) > 1:  # mapped sends share their primary connection, so their results agree
        raise SmsValidationError(f"results from {' and '.join(providers)} cannot be followed with one connection")
    tracked: Tracked | None = None
    for data in sent:
        for entry in data["accepted"] or []:
            if conn_id is not None and str(entry.get("conn_id") or default_conn_id) != conn_id:
                continue
            provider = str(entry.get("provider") or data["provider"]) if conn_id is not None else str(data["provider"])
            tracked = tracked or Tracked(provider, last_status=last_status)
            if provider != tracked.provider:
                raise SmsValidationError(
                    f"results from {tracked.provider} and {provider} cannot be followed with one connection"
                )
            to, message_id = str(entry.get("to") or ""), entry.get("message_id")
            if message_id:
                tracked.by_id[str(message_id)] = to
            else:
                tracked.untracked.append(to)
        if tracked is None and conn_id is None and sent:
            tracked = Tracked(str(data["provider"]), last_status=last_status)
    if tracked is None:  # nothing but dry runs (or no result at all): nothing was sent
        items = results if isinstance(results, (list, tuple)) else [results]
        first = next((d.get("provider") for d in items if isinstance(d, Mapping)), None)
        return Tracked(str(first or ""), last_status=last_status)
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
    reports = hook.get_delivery_reports(waiting)
    note = getattr(hook, "note_reports", None)
    if note is not None:  # opted-out recipients (``unsubscribed``) go to the opt-out register
        note(reports)
    return merge_reports(known, reports, tracked)


def summary(tracked: Tracked, known: Mapping[str, DeliveryReport]) -> dict[str, Any]:
    """The sensor's return value: one report per tracked recipient and the numbers by outcome.

    ``delivered``: confirmed on the phone; ``undelivered``: failed, expired, rejected or opted out;
    ``sent``: handed on by a provider whose reports stop there (Cloudware); ``pending``: no final
    status yet (or nothing heard); ``untracked``: accepted without an id to follow.
    """
    return summary_of({"": tracked}, {"": known}, provider=tracked.provider)


def summary_of(
    tracked: Mapping[str, Tracked], known: Mapping[str, Mapping[str, DeliveryReport]], *, provider: str
) -> dict[str, Any]:
    """``summary`` over the messages of several connections (a send that failed over), keyed by conn id."""
    reports = []
    delivered, undelivered, sent, waiting, untracked = [], [], [], [], []
    for conn_id, part in tracked.items():
        seen = known.get(conn_id, {})
        for message_id, to in part.by_id.items():
            report = seen.get(message_id) or DeliveryReport(part.provider, message_id, to or None, "unknown")
            reports.append(report.to_dict())
            if report.status == "delivered":
                delivered.append(to)
            elif report.status in UNDELIVERED_STATUSES:
                undelivered.append(to)
            elif report.status == "sent" and part.last_status == "sent":
                sent.append(to)
            else:
                waiting.append(to)
        untracked.extend(part.untracked)
    return {
        "provider": provider,
        "reports": reports,
        "delivered": delivered,
        "undelivered": undelivered,
        "sent": sent,
        "pending": waiting,
        "untracked": untracked,
    }
