"""Normalized result types: ``SendResult`` for every send and ``InboundMessage`` for every reply.

Both are plain dataclasses with a JSON-safe ``to_dict()``; that dict is what operators push to XCom and
what sensors return, so downstream tasks never see provider-specific shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


@dataclass
class SendResult:
    """What happened to each recipient of one send.

    :param provider: ``cellcast``, ``clickatell`` or ``cloudware``.
    :param accepted: one ``{"to": e164, "message_id": str | None}`` per recipient the provider took.
    :param rejected: one ``{"to": str, "code": str, "reason": str}`` per recipient not taken, either by
        our validation (``invalid_number``) or by the provider; ``code`` is an ``SmsError.code`` for
        whole-batch failures.
    :param unsubscribed: numbers the provider refused because they opted out.
    :param requests: HTTP calls made, retries included.
    """

    provider: str
    accepted: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    unsubscribed: list[str] = field(default_factory=list)
    requests: int = 0

    @property
    def ok(self) -> bool:
        """True when every recipient was accepted."""
        return not self.rejected and not self.unsubscribed

    @property
    def not_accepted(self) -> list[str]:
        """Numbers that were rejected or unsubscribed, in order."""
        return [r["to"] for r in self.rejected] + list(self.unsubscribed)

    def add_rejected(self, to: str, code: str, reason: str) -> None:
        self.rejected.append({"to": to, "code": code, "reason": reason})

    def merge(self, other: SendResult) -> SendResult:
        """Fold another result (one batch, say) into this one and return self."""
        self.accepted.extend(other.accepted)
        self.rejected.extend(other.rejected)
        self.unsubscribed.extend(other.unsubscribed)
        self.requests += other.requests
        return self

    def summary(self) -> str:
        """One line for logs: counts, never message text."""
        return (
            f"{self.provider}: {len(self.accepted)} accepted, {len(self.rejected)} rejected, "
            f"{len(self.unsubscribed)} unsubscribed in {self.requests} request(s)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "accepted": [dict(a) for a in self.accepted],
            "rejected": [dict(r) for r in self.rejected],
            "unsubscribed": list(self.unsubscribed),
            "requests": self.requests,
        }


@dataclass(frozen=True)
class InboundMessage:
    """One message a provider received from a phone.

    :param from_number: the sender in E.164 (``+61400000001``), or as given when it is not a number.
    :param received_at: an aware datetime in UTC.
    :param raw: the provider's item as it came, for anything we do not normalize.
    """

    provider: str
    message_id: str
    from_number: str
    to_number: str | None
    text: str
    received_at: datetime
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "message_id": self.message_id,
            "from_number": self.from_number,
            "to_number": self.to_number,
            "text": self.text,
            "received_at": self.received_at.astimezone(timezone.utc).isoformat(),
            "raw": dict(self.raw),
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
        )


def derive_message_id(*parts: str) -> str:
    """A stable id for a message whose provider gave none: the same inputs always give the same id."""
    import hashlib

    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return f"derived-{digest[:24]}"
