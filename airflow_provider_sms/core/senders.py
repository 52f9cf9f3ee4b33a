"""Sender ID rules per provider, and the connection's list of registered sender IDs.

Cellcast documents its rule (A-Z a-z 0-9, space and dash; alphanumeric at most 11 characters, numeric
at most 16 digits); Clickatell and Cloudware document none, so they get the limits every network
applies (an alphanumeric ID is at most 11 characters, a number at most the 15 digits of E.164). An
alphanumeric ID has at least 3 characters everywhere. The optional ``registered_senders`` extra (say,
the IDs on Australia's Sender ID Register) refuses any other sender before anything is sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from airflow_provider_sms.core.errors import SmsValidationError
from airflow_provider_sms.core.validation import list_extra

_ALLOWED = re.compile(r"^[A-Za-z0-9 \-]+$")
_NUMERIC = re.compile(r"^\+?[0-9]+$")


@dataclass(frozen=True)
class SenderRules:
    """What a provider accepts as a sender ID, and where that rule comes from."""

    alphanumeric_min: int = 3
    alphanumeric_max: int = 11
    numeric_max: int = 15
    source: str = "not documented by the provider: the limits networks apply"


SENDER_RULES: dict[str, SenderRules] = {
    "cellcast": SenderRules(numeric_max=16, source="Cellcast's API documentation"),
    "clickatell": SenderRules(),
    "cloudware": SenderRules(),
}


def check_sender(sender: str | None, provider: str, *, hook_name: str | None = None) -> str | None:
    """Refuse a sender ID ``provider`` does not accept; return it as given (None: the provider's default).

    :raises SmsValidationError: naming the sender, the rule it breaks and what would be accepted.
    """
    if sender is None or not str(sender).strip():
        return None
    value = str(sender).strip()
    rules = SENDER_RULES.get(provider, SenderRules())
    name = hook_name or provider
    if _NUMERIC.match(value):
        digits = len(value.lstrip("+"))
        if digits > rules.numeric_max:
            raise SmsValidationError(
                f"numeric sender ID {value!r} has {digits} digits; {name} accepts at most {rules.numeric_max} "
                f"({rules.source}). Use a shorter number or an alphanumeric ID",
                provider=provider,
            )
        return value
    if not _ALLOWED.match(value):
        raise SmsValidationError(
            f"sender ID {value!r} has characters other than A-Z, a-z, 0-9, space and dash; remove them",
            provider=provider,
        )
    if not rules.alphanumeric_min <= len(value) <= rules.alphanumeric_max:
        raise SmsValidationError(
            f"alphanumeric sender ID {value!r} is {len(value)} characters; {name} accepts "
            f"{rules.alphanumeric_min} to {rules.alphanumeric_max} ({rules.source})",
            provider=provider,
        )
    return value


def parse_sender_list(raw: Any, *, conn_id: str) -> tuple[str, ...] | None:
    """The ``registered_senders`` extra: a list, a JSON list, or a comma-separated string; None when unset."""
    senders = list_extra(
        raw,
        conn_id=conn_id,
        name="registered_senders",
        example='["MyCompany", "61400000000"] or MyCompany, 61400000000',
        items_are="sender IDs",
    )
    return tuple(senders or ()) or None


def check_registered(sender: str | None, registered: tuple[str, ...] | None, *, conn_id: str) -> None:
    """Refuse a sender ID that is not on the connection's ``registered_senders`` list.

    No sender (the provider's own default number) is not a sender ID and passes.
    """
    if registered is None or sender is None:
        return
    if sender in registered or sender.lstrip("+") in (r.lstrip("+") for r in registered):
        return
    listed = ", ".join(repr(r) for r in registered)
    raise SmsValidationError(
        f"sender ID {sender!r} is not in connection {conn_id!r}'s registered_senders ({listed}); "
        "use one of those, or add it to the list once it is registered"
    )
