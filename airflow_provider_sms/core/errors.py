"""The ``SmsError`` hierarchy: every failure this provider raises, and what each one means.

Each class carries its meaning as data, so no table elsewhere has to repeat it:

- ``code``: the per-recipient code used in ``SendResult.rejected`` (a small fixed vocabulary; the
  provider's own code, when there is one, is kept beside it as ``provider_code``);
- ``retryable``: the provider certainly did not process the request and trying again later can
  succeed (an outage, a rate limit), so an Airflow retry is safe;
- ``fail_over``: the provider certainly did not process the recipient, so another connection may
  send it without anyone being texted twice;
- ``advice``: what the user should do, in one sentence.

This module is the one home of the recipient-code vocabulary (``BY_CODE``, ``error_class_for``);
``core.results`` reads it, and nothing here imports ``core.results``.

Errors carry the provider, the endpoint (method and path, never a query string or header) and a short,
safe excerpt of the provider's answer, so a user can act on the message without a debugger.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar


class SmsError(Exception):
    """Base class of every error raised by airflow-provider-sms."""

    code: ClassVar[str] = "error"
    retryable: ClassVar[bool] = False
    fail_over: ClassVar[bool] = False
    advice: ClassVar[str] = "the provider answered with an error"

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        endpoint: str | None = None,
        status: int | None = None,
        body_excerpt: str | None = None,
        attempts: int = 0,
    ) -> None:
        self.message = message
        self.provider = provider
        self.endpoint = endpoint
        self.status = status
        self.body_excerpt = body_excerpt
        # HTTP attempts this failure took (retries included); 0 when nothing was sent.
        self.attempts = attempts
        # The partial outcome when a send failed as a whole (a ``core.results.SendResult``: who was
        # rejected, who was never tried). Typed loosely so that this module, which ``core.results``
        # builds on for its code vocabulary, needs nothing from it: imports point one way only.
        self.result: Any = None
        super().__init__(self._render())

    def redact(self, scrub: Callable[[str], str]) -> SmsError:
        """Scrub secrets out of this error's texts (provider words may echo a token); return self."""
        self.message = scrub(self.message)
        if self.body_excerpt:
            self.body_excerpt = scrub(self.body_excerpt)
        self.args = (self._render(),)
        return self

    def _render(self) -> str:
        where = []
        if self.provider:
            where.append(self.provider)
        if self.endpoint:
            where.append(self.endpoint)
        if self.status is not None:
            where.append(f"HTTP {self.status}")
        text = f"{self.message}" if not where else f"{' '.join(where)}: {self.message}"
        if self.body_excerpt:
            text += f" (response: {self.body_excerpt})"
        return text


class SmsValidationError(SmsError, ValueError):
    """Bad input, found before any request was sent: nothing went to the provider."""

    code = "invalid_input"
    advice = "fix the task's arguments or the connection; nothing was sent"


class SmsInvalidNumberError(SmsValidationError):
    """A recipient is not a valid phone number; it is listed as rejected and never sent to."""

    code = "invalid_number"
    advice = "correct the number (with its country code) and send to it again"


class SmsUnsupportedFeatureError(SmsValidationError):
    """The provider's API has no way to do what was asked; the option is refused, never dropped."""

    code = "unsupported_feature"
    advice = "use a provider that supports the option, or leave it out"


class SmsUnsupportedDestinationError(SmsUnsupportedFeatureError):
    """The provider does not send to this number's country (Cellcast SMS and MMS: Australia only)."""

    code = "unsupported_destination"
    fail_over = True
    advice = "send to this number through a provider that covers its country (fallback_conn_ids)"


class SmsCountryNotAllowedError(SmsValidationError):
    """The number is in a country the connection's ``allowed_countries`` leaves out; never sent to,
    not even through a fallback connection (the list guards against SMS-pumping fraud)."""

    code = "country_not_allowed"
    advice = "add the country to the connection's allowed_countries if texting there is intended"


class SmsAuthError(SmsError):
    """The provider refused the credentials (HTTP 401/403) or the connection has no token."""

    code = "auth_failed"
    fail_over = True
    advice = "the provider refused the credentials; check the connection's password (API token)"


class SmsInsufficientCreditError(SmsError):
    """The account has too little balance for this send."""

    code = "insufficient_credit"
    fail_over = True
    advice = "the account balance is too low; top it up and run the task again"


class SmsRejectedError(SmsError):
    """The provider rejected the request or the recipient (a 4xx other than auth, credit and rate limits)."""

    code = "rejected"
    advice = "the provider rejected the request; see its answer for the field at fault"


class SmsRateLimitedError(SmsError):
    """The provider kept answering 429 after the retries allowed; try again later."""

    code = "rate_limited"
    retryable = True
    fail_over = True
    advice = "still rate limited after retries; lower the send rate or try again later"


class SmsProviderUnavailableError(SmsError):
    """The provider could not be reached or answered 503; the request was certainly not processed."""

    code = "provider_unavailable"
    retryable = True
    fail_over = True
    advice = "the provider is unavailable after retries; try again later"


class SmsDeliveryUnknownError(SmsError):
    """The request may have been processed (read timeout, dropped connection or 5xx after a POST).

    It is never resent automatically: resending could text the same people twice. Check the provider's
    dashboard or the recipients' replies before sending again.
    """

    code = "delivery_unknown"
    advice = (
        "the provider may have processed the request; the message may have been sent, so it is not resent automatically"
    )


class SmsOptOutRegisterUnavailableError(SmsError):
    """The opt-out register could not be read (the metadata database or the API server is down), so
    the send stopped before any request: texting someone who replied STOP is worse than a late text."""

    code = "opt_out_register_unavailable"
    retryable = True
    advice = (
        "the opt-out register could not be read, so nothing was sent; try again once Airflow's metadata "
        "database is reachable (respect_opt_out=False skips the register, for texts to your own staff only)"
    )


_CREDIT_WORDS = r"balance|credit|recharge|insufficient funds"
_AUTH_WORDS = r"token|unauthori[sz]ed|unauthenticated|api key|credentials"


def refusal_class(reason: str, *, status: int | None = None) -> type[SmsError]:
    """The error class for a provider's refusal, from its status and its own words.

    Used for 4xx answers and for 2xx answers that carry an explicit error: credit and auth problems are
    recognized by what the provider says (Cellcast answers a low balance with 422, others with 402 or
    a 200 holding an error), anything else is a rejection.
    """
    if status in (401, 403):
        return SmsAuthError
    if status == 429:
        return SmsRateLimitedError
    if status == 402 or re.search(_CREDIT_WORDS, reason or "", re.IGNORECASE):
        return SmsInsufficientCreditError
    if status is None and re.search(_AUTH_WORDS, reason or "", re.IGNORECASE):
        return SmsAuthError
    return SmsRejectedError


def _subclasses(root: type[SmsError]) -> list[type[SmsError]]:
    found = []
    for sub in root.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


# The recipient-code vocabulary: every code a ``SendResult.rejected`` entry may carry, and its meaning.
BY_CODE: dict[str, type[SmsError]] = {cls.code: cls for cls in _subclasses(SmsError)}


def error_class_for(code: str) -> type[SmsError]:
    """The error class whose ``code`` this is; ``ValueError`` for a code outside the vocabulary."""
    try:
        return BY_CODE[code]
    except KeyError:
        raise ValueError(f"{code!r} is not a recipient code; use one of {', '.join(sorted(BY_CODE))}") from None
