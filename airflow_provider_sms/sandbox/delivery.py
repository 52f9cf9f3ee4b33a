"""How the sandbox's sent messages progress, computed from the clock: scheduled → queued → sent → final.

A message is ``queued`` from when it is due (sent, or its scheduled time) until ``sent_after`` seconds
later, then ``sent`` until ``final_after`` seconds after it was due, then final: ``delivered``, or the
outcome set for its number through the control API (``POST /_sandbox/delivery``), or the outcome of
one of the test numbers below, which always end the same way so failure paths can be exercised
(+61400000911 fails through Cellcast and Cloudware and is delivered through Clickatell: a route that
fails on one provider, which is what a delivery-based fallback is for).
``reported`` is what the provider itself would say: Cloudware never reports past ``sent``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

# Numbers that always end the same way: texting them exercises a DAG's failure paths.
TEST_NUMBERS = {
    "+61400000911": "failed",
    "+61400000912": "expired",
    "+61400000913": "unsubscribed",  # delivered, and the recipient opted out (replied STOP)
}
# Test numbers whose route works through some providers only: +61400000911 fails through Cellcast
# (and Cloudware), and Clickatell delivers it, so a fallback to Clickatell reaches the phone.
DELIVERED_THROUGH = {"+61400000911": frozenset({"clickatell"})}
OUTCOMES = ("delivered", "failed", "expired", "rejected", "unsubscribed")
SENT_IS_FINAL = frozenset({"cloudware"})  # providers that report a message as sent and nothing after


@dataclass
class DeliveryPlan:
    """Delays (seconds after a message is due) and per-number outcomes."""

    sent_after: float = 1.0
    final_after: float = 3.0
    outcomes: dict[str, str] = field(default_factory=dict)

    def update(self, body: dict[str, Any]) -> None:
        """Apply a control call's ``sent_after``, ``final_after`` and ``outcomes`` (validated first)."""
        from airflow_provider_sms.core.phone import normalize_number

        sent_after = float(body.get("sent_after", self.sent_after))
        final_after = float(body.get("final_after", self.final_after))
        if not 0 <= sent_after <= final_after <= 86_400:
            raise ValueError("need 0 <= sent_after <= final_after <= 86400 seconds")
        outcomes = dict(self.outcomes)
        for number, outcome in (body.get("outcomes") or {}).items():
            if outcome not in OUTCOMES:
                raise ValueError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
            outcomes[normalize_number(str(number), "AU")] = outcome
        self.sent_after, self.final_after, self.outcomes = sent_after, final_after, outcomes

    def outcome(self, phone: str, provider: str | None = None) -> str:
        """How a message to ``phone`` ends: the outcome set for it, else the test numbers' rule (for the
        provider that took it), else ``delivered``."""
        if phone in self.outcomes:
            return self.outcomes[phone]
        if provider is not None and provider in DELIVERED_THROUGH.get(phone, ()):
            return "delivered"
        return TEST_NUMBERS.get(phone) or "delivered"

    def status(self, row: dict[str, Any], now: datetime | None = None) -> str:
        """The status of a stored message now (a received message keeps its own)."""
        if row["direction"] != "out":
            return str(row["status"])
        now = now or datetime.now(timezone.utc)
        waited = (now - due_at(row)).total_seconds()
        if waited < 0:
            return "scheduled"
        if waited < self.sent_after:
            return "queued"
        if waited < self.final_after:
            return "sent"
        return self.outcome(row["phone"], row.get("provider"))

    def reported(self, row: dict[str, Any], now: datetime | None = None) -> str:
        """The status the message's provider would report now: Cloudware reports ``sent`` and nothing after."""
        status = self.status(row, now)
        if row["direction"] == "out" and row["provider"] in SENT_IS_FINAL and status not in ("scheduled", "queued"):
            return "sent"
        return status

    def settles_at(self, row: dict[str, Any]) -> datetime:
        """When a sent message reaches its final status."""
        return due_at(row) + timedelta(seconds=self.final_after)


def due_at(row: dict[str, Any]) -> datetime:
    """When a stored message was due to go: its scheduled time, else when it was stored."""
    return parse_stamp(row["scheduled_for"] or row["ts"])


def parse_stamp(text: str) -> datetime:
    """A store timestamp (``2030-01-01T09:00:00.000000Z``) as aware UTC."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- what each provider calls a status -----------------------------------------------------------------

CELLCAST_WORDS = {"unsubscribed": "delivered"}  # delivered, then a STOP reply: replyStop says so

# Clickatell's status codes and names (its message status table; expiry is reported by name).
CLICKATELL_CODES = {
    "scheduled": (3, "SCHEDULED", "Message scheduled"),
    "queued": (2, "QUEUED", "Message queued"),
    "sent": (4, "DELIVERED_TO_GATEWAY", "Message sent to the supplier"),
    "delivered": (5, "RECEIVED_BY_RECIPIENT", "Message delivered to the handset"),
    "failed": (20, "ERROR_DELIVERING", "Error delivering the message"),
    "expired": (20, "MESSAGE_EXPIRED", "The message expired before it could be delivered"),
    "rejected": (20, "ROUTING_ERROR", "The message could not be routed"),
    "unsubscribed": (21, "STOPPED_BY_USER", "The recipient opted out"),
}
