"""Reading a provider's 2xx answer truthfully, the same way for every provider.

A send counts as accepted only when the answer has the provider's documented success shape. A 2xx that
says it refused (an error field, or a status such as ``false``/``"error"``) is that refusal, with the
provider's own reason, classified as credit, auth or a plain rejection. A 2xx that says neither (``{}``,
``[]``, ``null``, an unknown status) cannot tell who was sent to: delivery unknown, never resent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from airflow_provider_sms.core.errors import SmsDeliveryUnknownError, refusal_class

_ERROR_STATUSES = frozenset({"error", "failed", "fail", "failure", "false"})
_REASON_KEYS = ("message", "errorDescription", "error", "errors")
_REASON_CHARS = 300


class _Reply(Protocol):
    status: int
    endpoint: str


def refusal_reason(body: Any) -> str | None:
    """The provider's reason when a 2xx body explicitly says it refused the request, else None."""
    if not isinstance(body, dict):
        return None
    status = body.get("status")
    error_status = status is False or (isinstance(status, str) and status.strip().lower() in _ERROR_STATUSES)
    has_error = any(body.get(key) not in (None, "", {}, []) for key in ("error", "errors", "errorCode"))
    if not (error_status or has_error):
        return None
    code = body.get("errorCode")
    suffix = f" (error code {code})" if code not in (None, "") else ""
    for key in _REASON_KEYS:
        value = body.get(key)
        if isinstance(value, dict):
            value = value.get("errorMessage") or value.get("message") or next(iter(value.values()), None)
        if isinstance(value, str) and value.strip():
            return value.strip()[:_REASON_CHARS] + suffix
    return f"the provider refused the request (status {status!r}){suffix}"


def require_success(
    body: Any, reply: _Reply, *, provider: str, succeeded: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """``body`` (the parsed answer to ``reply``) when ``succeeded(body)``; otherwise raise what it means.

    :raises SmsInsufficientCreditError, SmsAuthError, SmsRejectedError: the answer says it refused.
    :raises SmsDeliveryUnknownError: the answer says neither success nor refusal.
    """
    if isinstance(body, dict) and succeeded(body):
        return body
    reason = refusal_reason(body)
    if reason is None:
        raise SmsDeliveryUnknownError(
            "answered 2xx without the documented success fields; the message may have been sent, so it is not resent",
            provider=provider,
            endpoint=reply.endpoint,
            status=reply.status,
        )
    raise refusal_class(reason)(reason, provider=provider, endpoint=reply.endpoint, status=reply.status)
