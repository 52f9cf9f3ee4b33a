"""What a send will cost, from the connection's own price table, and the caps that refuse a dear send.

The price table is the connection's ``prices`` extra: price per SMS part keyed by ISO country code,
with an optional ``default`` (``{"AU": 0.055, "GB": 0.04, "default": 0.08}``), in whatever currency
the account is billed in. There are no built-in prices: they would go stale. An estimate is parts per
recipient times the price for the recipient's country; ``max_parts`` caps the SMS parts of the whole
send (every recipient's parts together) and ``max_cost`` its estimated cost, and either refuses the
whole send before any request. None of the three providers documents an account-balance endpoint, so
an estimate reports no balance and says why.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from airflow_provider_sms.core.countries import country_of
from airflow_provider_sms.core.errors import SmsValidationError

DEFAULT_PRICE = "default"
# Where each provider offers an account balance endpoint (none of the documented APIs does).
BALANCE_ENDPOINTS: dict[str, str] = {}


def parse_prices(raw: Any, *, conn_id: str) -> dict[str, Decimal] | None:
    """The ``prices`` extra (a dict or its JSON text) as ISO code -> price per part; None when unset.

    :raises SmsValidationError: for anything but non-negative finite numbers keyed by two-letter codes
        or ``default``.
    """
    if raw is None or raw == "" or raw == {}:
        return None
    table = raw
    if isinstance(raw, str):
        try:
            table = json.loads(raw)
        except ValueError:
            raise SmsValidationError(
                f'connection {conn_id!r}: prices is not valid JSON; write it like {{"AU": 0.055, "default": 0.08}}'
            ) from None
    if not isinstance(table, Mapping):
        raise SmsValidationError(
            f'connection {conn_id!r}: prices must map country codes to a price per SMS part, like {{"AU": 0.055}}'
        )
    prices: dict[str, Decimal] = {}
    for key, value in table.items():
        code = str(key).strip()
        code = DEFAULT_PRICE if code.lower() == DEFAULT_PRICE else code.upper()
        if code != DEFAULT_PRICE and not (len(code) == 2 and code.isalpha()):
            raise SmsValidationError(
                f"connection {conn_id!r}: prices key {key!r} is not a two-letter ISO country code or 'default'"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            number = math.nan
        else:
            try:
                number = float(value)
            except ValueError:
                number = math.nan
        if not (math.isfinite(number) and number >= 0):
            raise SmsValidationError(
                f"connection {conn_id!r}: prices[{key!r}] is {value!r}; give a price per SMS part of 0 or more"
            )
        prices[code] = Decimal(str(value))
    return prices or None


def check_caps(max_parts: Any = None, max_cost: Any = None) -> tuple[int | None, Decimal | None]:
    """Check a sender's ``max_parts`` (a whole number of SMS parts) and ``max_cost`` (a price)."""
    parts: int | None = None
    cost: Decimal | None = None
    if max_parts is not None:
        if isinstance(max_parts, bool) or not isinstance(max_parts, int) or max_parts < 1:
            raise SmsValidationError(f"max_parts must be a whole number of SMS parts of 1 or more, not {max_parts!r}")
        parts = max_parts
    if max_cost is not None:
        if isinstance(max_cost, bool) or not isinstance(max_cost, (int, float, Decimal)) or not max_cost >= 0:
            raise SmsValidationError(f"max_cost must be a number of 0 or more, not {max_cost!r}")
        cost = Decimal(str(max_cost))
    return parts, cost


@dataclass
class Estimate:
    """What a send would use: SMS parts per recipient, their price, and the total."""

    encoding: str | None
    parts_per_message: int
    recipients: list[dict[str, Any]] = field(default_factory=list)
    total_parts: int = 0
    total_cost: Decimal | None = None
    unpriced: list[str] = field(default_factory=list)  # countries with no price and no default
    replaced: int = 0  # characters smart encoding replaced
    balance: Any = None
    balance_note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe; costs as floats rounded to 6 places."""
        return {
            "encoding": self.encoding,
            "parts_per_message": self.parts_per_message,
            "smart_encoding_replaced": self.replaced,
            "recipients": [dict(r) for r in self.recipients],
            "total_parts": self.total_parts,
            "total_cost": _money(self.total_cost),
            "unpriced_countries": list(self.unpriced),
            "balance": self.balance,
            "balance_note": self.balance_note,
        }


def _money(value: Decimal | None) -> float | None:
    return None if value is None else round(float(value), 6)


def estimate(
    numbers: Sequence[str],
    parts: int,
    prices: Mapping[str, Decimal] | None,
    *,
    encoding: str | None,
    provider: str,
    replaced: int = 0,
) -> Estimate:
    """Parts and cost per recipient of one message; ``total_cost`` is None without a full price table."""
    result = Estimate(encoding, parts, replaced=replaced)
    total = Decimal(0)
    unpriced: set[str] = set()
    for number in numbers:
        country = country_of(number)
        entry: dict[str, Any] = {"to": number, "country": country, "parts": parts}
        if prices is not None:
            price = prices.get(country or "", prices.get(DEFAULT_PRICE))
            if price is None:
                unpriced.add(country or "unknown")
                entry["cost"] = None
            else:
                entry["cost"] = _money(price * parts)
                total += price * parts
        result.recipients.append(entry)
    result.total_parts = parts * len(numbers)
    result.unpriced = sorted(unpriced)
    result.total_cost = total if prices is not None and not unpriced else None
    endpoint = BALANCE_ENDPOINTS.get(provider)
    result.balance_note = (
        f"see {endpoint}" if endpoint else f"{provider} documents no account-balance endpoint; none was asked"
    )
    return result


def enforce_caps(
    plan: Estimate, max_parts: int | None, max_cost: Decimal | None, *, conn_id: str, what: str = "this send"
) -> None:
    """Refuse ``plan`` when it goes over a cap, naming the estimate, the cap and what to change."""
    recipients = len(plan.recipients) or plan.total_parts // max(plan.parts_per_message, 1)
    if max_parts is not None and plan.total_parts > max_parts:
        raise SmsValidationError(
            f"{what} needs {plan.total_parts} SMS parts ({recipients} recipient(s) x {plan.parts_per_message} "
            f"part(s), {plan.encoding}); max_parts is {max_parts}. Nothing was sent: shorten the text, send to "
            "fewer recipients, or raise max_parts"
        )
    if max_cost is None:
        return
    if plan.total_cost is None:
        if plan.unpriced:
            missing = ", ".join(plan.unpriced)
            fix = f"add {missing} or a 'default' to connection {conn_id!r}'s prices"
        else:
            fix = f'give connection {conn_id!r} a prices extra, like {{"AU": 0.055, "default": 0.08}}'
        raise SmsValidationError(f"{what} cannot be priced for max_cost: {fix}. Nothing was sent")
    if plan.total_cost > max_cost:
        raise SmsValidationError(
            f"{what} is estimated at {_money(plan.total_cost)} ({plan.total_parts} SMS parts to {recipients} "
            f"recipient(s)); max_cost is {_money(max_cost)}. Nothing was sent: shorten the text, send to fewer "
            "recipients, or raise max_cost"
        )


def combined(estimates: Sequence[dict[str, Any] | None]) -> Estimate:
    """One estimate for a send of several messages (each an ``Estimate.to_dict()``; None: not SMS text)."""
    known = [e for e in estimates if e is not None]
    encodings = {e["encoding"] for e in known}
    total = Estimate(
        encodings.pop() if len(encodings) == 1 else None, max((e["parts_per_message"] for e in known), default=0)
    )
    costs = [e["total_cost"] for e in known]
    for item in known:
        total.recipients.extend(item["recipients"])
        total.total_parts += item["total_parts"]
        total.unpriced = sorted(set(total.unpriced) | set(item["unpriced_countries"]))
        total.replaced += item["smart_encoding_replaced"]
    if known and all(c is not None for c in costs):
        total.total_cost = sum((Decimal(str(c)) for c in costs), Decimal(0))
    total.balance_note = known[0]["balance_note"] if known else ""
    return total
