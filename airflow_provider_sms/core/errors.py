"""The ``SmsError`` hierarchy: every failure this provider raises, each saying what happened and what to do.

Errors carry the provider, the endpoint (method and path, never a query string or header) and a short,
safe excerpt of the provider's answer, so a user can act on the message without a debugger. Each class
has a stable ``code`` used in ``SendResult.rejected`` entries, and ``retryable`` says whether trying the
same request again later can succeed (operators turn non-retryable errors into failed tasks that
Airflow does not retry).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_sms.core.results import SendResult


class SmsError(Exception):
    """Base class of every error raised by airflow-provider-sms."""

    code = "error"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        endpoint: str | None = None,
        status: int | None = None,
        body_excerpt: str | None = None,
    ) -> None:
        self.message = message
        self.provider = provider
        self.endpoint = endpoint
        self.status = status
        self.body_excerpt = body_excerpt
        # The partial outcome when a send failed as a whole: who was rejected, who was never tried.
        self.result: SendResult | None = None
        super().__init__(self._render())

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


class SmsUnsupportedFeatureError(SmsValidationError):
    """The provider's API has no way to do what was asked; the option is refused, never dropped."""

    code = "unsupported_feature"


class SmsAuthError(SmsError):
    """The provider refused the credentials (HTTP 401/403) or the connection has no token."""

    code = "auth_failed"


class SmsInsufficientCreditError(SmsError):
    """The account has too little balance for this send."""

    code = "insufficient_credit"


class SmsRejectedError(SmsError):
    """The provider rejected the request (a 4xx other than auth, credit and rate limiting)."""

    code = "rejected"


class SmsRateLimitedError(SmsError):
    """The provider kept answering 429 after the retries allowed; try again later."""

    code = "rate_limited"
    retryable = True


class SmsProviderUnavailableError(SmsError):
    """The provider could not be reached or answered 5xx; the request was certainly not processed."""

    code = "provider_unavailable"
    retryable = True


class SmsDeliveryUnknownError(SmsError):
    """The request may have been processed (read timeout, dropped connection or 5xx after a POST).

    It is never resent automatically: resending could text the same people twice. Check the provider's
    dashboard or the recipients' replies before sending again.
    """

    code = "delivery_unknown"
