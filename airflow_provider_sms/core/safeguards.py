"""The checks between a validated send and its first request: a sender's options and the connection's
rules.

A sender's options (``SendPolicy``: ``max_parts``, ``max_cost``, ``smart_encoding``, ``validity``)
and the connection's extras (``ConnectionRules``: ``registered_senders``, ``allowed_countries``,
``prices``) are checked once, when they are given; ``screen`` then applies them to a prepared send:
the sender ID against the provider's documented rule and the registered list, a validity period
against the providers that have one, recipients against the allowed countries (the others are
rejected per number), and the estimate against the caps. Everything here refuses before any request.
``screen_opt_outs`` runs first: recipients in the opt-out register become ``unsubscribed``, so the caps
count only those who will be texted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow_provider_sms.core.cost import Estimate, check_caps, enforce_caps, estimate, parse_prices
from airflow_provider_sms.core.countries import parse_countries, screen_countries
from airflow_provider_sms.core.encoding import SmartText, smart_encode
from airflow_provider_sms.core.errors import SmsUnsupportedFeatureError, SmsValidationError
from airflow_provider_sms.core.senders import check_registered, check_sender, parse_sender_list

if TYPE_CHECKING:
    from airflow_provider_sms.core.pipeline import Prepared

# Providers whose API takes a validity period, and the field it goes in.
VALIDITY_FIELDS: dict[str, str] = {"clickatell": "validityPeriod, in minutes"}
_PROVIDER_NAMES = {"cellcast": "Cellcast", "clickatell": "Clickatell", "cloudware": "Cloudware"}


def validity_minutes(validity: timedelta) -> int:
    """A validity period as the whole minutes Clickatell's ``validityPeriod`` takes."""
    seconds = validity.total_seconds()
    if seconds < 60 or seconds % 60:
        raise SmsValidationError(
            f"validity {validity} is not a whole number of minutes of at least one; the provider takes "
            "minutes: give e.g. timedelta(minutes=30)"
        )
    return int(seconds // 60)


@dataclass(frozen=True)
class SendPolicy:
    """A sender's cost, encoding and validity options (see ``SmsHook``'s parameters)."""

    max_parts: int | None = None
    max_cost: Decimal | None = None
    smart_encoding: bool = True
    validity: timedelta | None = None

    @classmethod
    def of(
        cls,
        *,
        max_parts: Any = None,
        max_cost: Any = None,
        smart_encoding: bool = True,
        validity: Any = None,
    ) -> SendPolicy:
        """Check the options as given (so a bad one fails when the DAG is parsed)."""
        parts, cost = check_caps(max_parts, max_cost)
        if validity is not None:
            if not isinstance(validity, timedelta):
                raise SmsValidationError(f"validity must be a timedelta, like timedelta(hours=2), not {validity!r}")
            validity_minutes(validity)
        return cls(parts, cost, bool(smart_encoding), validity)

    def text(self, message: str, *, sms: bool = True) -> SmartText:
        """The text to send: with look-alikes replaced when smart encoding is on and this is SMS text."""
        if not self.smart_encoding or not sms or not isinstance(message, str):
            return SmartText(message, 0)
        return smart_encode(message)


@dataclass(frozen=True)
class ConnectionRules:
    """A connection's ``registered_senders``, ``allowed_countries`` and ``prices`` extras, checked."""

    registered_senders: tuple[str, ...] | None = None
    allowed_countries: frozenset[str] | None = None
    prices: dict[str, Decimal] | None = None

    @classmethod
    def from_extras(cls, extra: Callable[[str], Any], conn_id: str) -> ConnectionRules:
        """Read and check the three extras; ``extra(name)`` returns one (None when unset)."""
        return cls(
            parse_sender_list(extra("registered_senders"), conn_id=conn_id),
            parse_countries(extra("allowed_countries"), conn_id=conn_id),
            parse_prices(extra("prices"), conn_id=conn_id),
        )


def check_validity(policy: SendPolicy, provider: str, hook_name: str) -> None:
    """Refuse a validity period where the provider has no field for one, naming those that do."""
    if policy.validity is None or provider in VALIDITY_FIELDS:
        return
    able = ", ".join(f"{_PROVIDER_NAMES.get(p, p)} ({field})" for p, field in VALIDITY_FIELDS.items())
    raise SmsUnsupportedFeatureError(
        f"{hook_name} has no validity period in its API, so validity={policy.validity} cannot be honoured; "
        f"leave validity out or send through {able}",
        provider=provider,
    )


def screen_opt_outs(prepared: Prepared, lookup: Callable[[list[str]], set[str] | None]) -> None:
    """Move the recipients the opt-out register holds from ``prepared.numbers`` to
    ``prepared.result.unsubscribed``: no request is made for them, through any connection.

    :param lookup: the opted-out numbers among those given (``state.opt_outs.OptOutRegister.check``),
        or None where there is no register to consult (a plain script).
    :raises SmsOptOutRegisterUnavailableError: from ``lookup``: the register cannot be read, so nothing
        may be sent.
    """
    if not prepared.numbers:
        return
    opted_out = lookup(prepared.numbers)
    if not opted_out:
        return
    prepared.result.unsubscribed += [n for n in prepared.numbers if n in opted_out]
    prepared.numbers = [n for n in prepared.numbers if n not in opted_out]


def screen(
    prepared: Prepared,
    policy: SendPolicy,
    rules: ConnectionRules,
    *,
    provider: str,
    hook_name: str,
    conn_id: str,
    replaced: int = 0,
    dry_run: bool = True,
) -> Estimate | None:
    """Apply the sender's options and the connection's rules to a prepared send, before any request.

    Recipients outside ``allowed_countries`` leave ``prepared.numbers`` for ``prepared.result.rejected``.

    :param dry_run: a dry run reports the full estimate; a real send works one out only for its caps
        (the per-recipient prices only under ``max_cost``), so a send without caps pays nothing for it.
    :return: the estimate of parts and cost (None for content that is not SMS text, MMS or binary, and
        for a real send without caps).
    :raises SmsValidationError: a sender ID the provider or the registered list refuses, a cap exceeded.
    :raises SmsUnsupportedFeatureError: a validity period the provider has no field for.
    """
    sender = check_sender(prepared.outgoing.sender, provider, hook_name=hook_name)
    check_registered(sender, rules.registered_senders, conn_id=conn_id)
    check_validity(policy, provider, hook_name)
    prepared.numbers = screen_countries(prepared.numbers, rules.allowed_countries, prepared.result, conn_id=conn_id)
    info = prepared.outgoing.segments
    if info is None:
        if policy.max_parts is not None or policy.max_cost is not None:
            raise SmsUnsupportedFeatureError(
                "max_parts and max_cost count SMS parts, and this content is not SMS text (MMS or binary); "
                "leave them out for this send",
                provider=provider,
            )
        return None
    if not dry_run and policy.max_cost is None:
        if policy.max_parts is not None:
            parts_only = Estimate(info.encoding, info.segments, total_parts=info.segments * len(prepared.numbers))
            enforce_caps(parts_only, policy.max_parts, None, conn_id=conn_id)
        return None
    plan = estimate(
        prepared.numbers, info.segments, rules.prices, encoding=info.encoding, provider=provider, replaced=replaced
    )
    enforce_caps(plan, policy.max_parts, policy.max_cost, conn_id=conn_id)
    return plan
