"""Normalized result types: ``SendResult`` for every send, ``InboundMessage`` for every reply and
``DeliveryReport`` for what became of a sent message.

All three are plain dataclasses with a JSON-safe ``to_dict()``; that dict is what operators push to XCom and
what sensors return, so downstream tasks never see provider-specific shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_provider_sms.core.errors import error_class_for


@dataclass
class SendResult:
    """What happened to each recipient of one send (or, with ``dry_run``, what would happen).

    :param provider: ``cellcast``, ``clickatell`` or ``cloudware``.
    :param accepted: one ``{"to": e164, "message_id": str | None, "conn_id": str}`` per recipient the
        provider took (in a dry run: every recipient the send would go to); ``conn_id`` is the Airflow
        connection that accepted it, so a failed-over message's report is asked of the right provider.
    :param rejected: one ``{"to", "code", "reason"}`` per recipient not taken, by our validation or by
        the provider; ``code`` is from the fixed vocabulary of ``core.errors`` (``invalid_number``,
        ``unsupported_destination``, ``rejected``, ``auth_failed``, ``insufficient_credit``,
        ``rate_limited``, ``provider_unavailable``, ``delivery_unknown``...), and ``provider_code``
        keeps the provider's own code when it gave one.
    :param unsubscribed: numbers the provider refused because they opted out.
    :param requests: HTTP calls made, retries included (in a dry run: the calls the send would make).
    :param segments: SMS parts sent (or planned) to the accepted recipients.
    :param encoding: ``GSM-7`` or ``UCS-2`` when every accepted text had the same encoding.
    :param dry_run: nothing was sent; this is the plan.
    :param in_doubt: numbers whose request may have been processed (an earlier try died or lost the
        answer, and the provider could not say) and that were not resent, so nobody is texted twice.
    :param estimate: in a dry run of SMS text, the parts per recipient and the estimated cost
        (``core.cost.Estimate.to_dict()``); None otherwise.
    """

    provider: str
    accepted: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    unsubscribed: list[str] = field(default_factory=list)
    requests: int = 0
    segments: int = 0
    encoding: str | None = None
    dry_run: bool = False
    in_doubt: list[str] = field(default_factory=list)
    estimate: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """True when every recipient was accepted."""
        return not self.rejected and not self.unsubscribed and not self.in_doubt

    @property
    def not_accepted(self) -> list[str]:
        """Numbers that were rejected or unsubscribed, in order."""
        return [r["to"] for r in self.rejected] + list(self.unsubscribed)

    @property
    def retry_safe(self) -> bool:
        """True when nobody was accepted and every failure means "not processed, may succeed later"."""
        return (
            not self.accepted
            and not self.unsubscribed
            and all(error_class_for(r["code"]).retryable for r in self.rejected)
        )

    def fail_over_numbers(self) -> list[str]:
        """Rejected numbers this provider certainly did not process: another connection may take them."""
        return [r["to"] for r in self.rejected if error_class_for(r["code"]).fail_over]

    def add_accepted(self, to: str, message_id: Any = None) -> None:
        self.accepted.append({"to": to, "message_id": None if message_id in (None, "") else str(message_id)})

    def mark_connection(self, conn_id: str) -> SendResult:
        """Record ``conn_id`` as the connection that accepted each accepted message without one; return self."""
        for entry in self.accepted:
            entry.setdefault("conn_id", conn_id)
        return self

    def add_rejected(self, to: str, code: str, reason: str, provider_code: Any = None) -> None:
        """Record a recipient that was not taken; ``code`` must be from the recipient-code vocabulary."""
        error_class_for(code)  # an unknown code is a bug here, not something to hand downstream
        entry: dict[str, Any] = {"to": to, "code": code, "reason": reason}
        if provider_code not in (None, ""):
            entry["provider_code"] = str(provider_code)
        self.rejected.append(entry)

    def merge(self, other: SendResult) -> SendResult:
        """Fold another result (one batch, say) into this one and return self."""
        if other.accepted:
            mixed = self.accepted and self.encoding != other.encoding
            self.encoding = None if mixed else other.encoding
        self.accepted.extend(other.accepted)
        self.rejected.extend(other.rejected)
        self.unsubscribed.extend(other.unsubscribed)
        self.in_doubt.extend(n for n in other.in_doubt if n not in self.in_doubt)
        self.requests += other.requests
        self.segments += other.segments
        self.dry_run = self.dry_run or other.dry_run
        return self

    def summary(self) -> str:
        """One line for logs: counts, never message text."""
        verb = "would be sent" if self.dry_run else "accepted"
        doubt = f", {len(self.in_doubt)} in doubt" if self.in_doubt else ""
        return (
            f"{self.provider}: {len(self.accepted)} {verb}, {len(self.rejected)} rejected, "
            f"{len(self.unsubscribed)} unsubscribed{doubt} in {self.requests} request(s)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "accepted": [dict(a) for a in self.accepted],
            "rejected": [dict(r) for r in self.rejected],
            "unsubscribed": list(self.unsubscribed),
            "requests": self.requests,
            "segments": self.segments,
            "encoding": self.encoding,
            "dry_run": self.dry_run,
            "in_doubt": list(self.in_doubt),
            **({"estimate": self.estimate} if self.estimate is not None else {}),
        }


@dataclass
class SentCheck:
    """What a provider says of recipients in doubt (``SmsHook.confirm_sent``).

    :param found: number -> message id (or None) for each one the provider lists as sent that text.
    :param absent: numbers the provider's listing, read completely back to the moment in question,
        does not hold: certainly not taken, so they may be sent. The others stay in doubt.
    """

    found: dict[str, str | None] = field(default_factory=dict)
    absent: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class InboundMessage:
    """One message a provider received from a phone.

    :param from_number: the sender in E.164 (``+61400000001``), or as given when it is not a number.
    :param received_at: an aware datetime in UTC.
    :param raw: the provider's item as it came, for anything we do not normalize.
    :param received_at_estimated: the provider gave no readable time, so ``received_at`` is when we
        received it (a pushed webhook reply); ``to_dict()`` then says so.
    """

    provider: str
    message_id: str
    from_number: str
    to_number: str | None
    text: str
    received_at: datetime
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    received_at_estimated: bool = field(default=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "message_id": self.message_id,
            "from_number": self.from_number,
            "to_number": self.to_number,
            "text": self.text,
            "received_at": self.received_at.astimezone(timezone.utc).isoformat(),
            "raw": dict(self.raw),
            **({"received_at_estimated": True} if self.received_at_estimated else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InboundMessage:
        """Rebuild a message from ``to_dict()`` output (used by triggers, whose events are JSON)."""
        return cls(
            provider=data["provider"],
            message_id=data["message_id"],
            from_number=data["from_number"],
            to_number=data.get("to_number"),
            text=data["text"],
            received_at=datetime.fromisoformat(data["received_at"]),
            raw=dict(data.get("raw") or {}),
            received_at_estimated=bool(data.get("received_at_estimated")),
        )


# The delivery statuses every provider's reports are mapped to; the last five are final.
DELIVERY_STATUSES = ("queued", "sent", "unknown", "delivered", "failed", "expired", "rejected", "unsubscribed")
FINAL_STATUSES = frozenset({"delivered", "failed", "expired", "rejected", "unsubscribed"})
UNDELIVERED_STATUSES = frozenset({"failed", "expired", "rejected", "unsubscribed"})


@dataclass(frozen=True)
class DeliveryReport:
    """What a provider says became of one sent message.

    :param status: one of ``DELIVERY_STATUSES``: ``queued``, ``sent``, ``delivered``, ``failed``,
        ``expired``, ``rejected``, ``unsubscribed`` (the recipient opted out) or ``unknown``.
    :param provider_status: the provider's own word or code for it.
    :param at: when the provider says it happened (aware UTC), or None when it does not say.
    :param raw: the provider's record as it came.
    """

    provider: str
    message_id: str
    to: str | None
    status: str
    provider_status: str | None = None
    at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.status not in DELIVERY_STATUSES:
            raise ValueError(f"{self.status!r} is not a delivery status; use one of {', '.join(DELIVERY_STATUSES)}")

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "message_id": self.message_id,
            "to": self.to,
            "status": self.status,
            "provider_status": self.provider_status,
            "at": self.at.astimezone(timezone.utc).isoformat() if self.at else None,
            "raw": dict(self.raw),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeliveryReport:
        return cls(
            provider=data["provider"],
            message_id=data["message_id"],
            to=data.get("to"),
            status=data["status"],
            provider_status=data.get("provider_status"),
            at=datetime.fromisoformat(data["at"]) if data.get("at") else None,
            raw=dict(data.get("raw") or {}),
        )


def derive_message_id(from_number: str, received_at: datetime, text: str) -> str:
    """A stable id for a message whose provider gave none.

    It depends on the sender, the text and the time to the whole second in UTC, never on how the
    provider wrote the time (``...00.455Z`` and ``... 00:00:00`` give the same id), so a message listed
    again with its time formatted differently is still recognized.
    """
    import hashlib

    moment = received_at.astimezone(timezone.utc).replace(microsecond=0).isoformat()
    digest = hashlib.sha256("\x1f".join((from_number, moment, text)).encode("utf-8")).hexdigest()
    return f"derived-{digest[:24]}"
