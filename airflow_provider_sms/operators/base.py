"""What every SMS operator does after calling its hook: log, push the result, decide fail or retry.

The rule that keeps Airflow retries from texting anyone twice: a task is left retryable only when the
provider accepted nobody and every failure means "not processed" (an outage or rate limit). Bad input,
auth, credit and rejection errors, ``delivery_unknown``, and any send where someone was already
accepted fail the task without retries; the full result is in XCom either way, so a follow-up task
can resend to exactly the recipients that did not get the message.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow_provider_sms._compat import AirflowFailException, BaseOperator, Context
from airflow_provider_sms.core.errors import SmsError, SmsValidationError

if TYPE_CHECKING:
    from airflow_provider_sms.core.results import SendResult

_SUMMARY_LIMIT = 10


def coerce_recipients(value: Any) -> Any:
    """Accept what templating gives: a list, a comma-separated string, or a rendered list literal."""
    if isinstance(value, str) and value.strip().startswith("["):
        text = value.strip()
        try:
            return json.loads(text)
        except ValueError:
            try:
                return ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise SmsValidationError(f"recipients {text[:80]!r} look like a list but cannot be read") from None
    return value


class SmsBaseOperator(BaseOperator):
    """Shared execution for the SMS operators.

    :param fail_on_rejected: fail the task (after pushing the result) when any recipient was rejected
        or unsubscribed. With False, the task succeeds as long as the provider was reached.
    """

    ui_color = "#d6f5e3"

    def __init__(self, *, fail_on_rejected: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fail_on_rejected = fail_on_rejected

    def deliver(self, context: Context, send: Callable[[], SendResult]) -> dict[str, Any]:
        """Run ``send`` and turn its outcome into an XCom value, a failure, or a retry."""
        try:
            result = send()
        except SmsError as err:
            if err.result is None:
                raise self._failure(err) from err
            result = err.result
        return self.finish(context, result)

    def finish(self, context: Context, result: SendResult) -> dict[str, Any]:
        self.log.info("SMS %s", result.summary())
        data = result.to_dict()
        if result.ok:
            return data
        self._log_problems(result)
        context["ti"].xcom_push(key="return_value", value=data)
        if not self.fail_on_rejected and result.accepted:
            return data
        retryable = (
            not result.accepted
            and all(r["code"] in _retryable_codes() for r in result.rejected)
            and not result.unsubscribed
        )
        message = (
            f"{len(result.rejected)} recipient(s) rejected and {len(result.unsubscribed)} unsubscribed of "
            f"{len(result.accepted) + len(result.rejected) + len(result.unsubscribed)}; the full result is in XCom"
        )
        if retryable:
            raise SmsError(message + "; nothing was processed, so the task may be retried safely")
        raise AirflowFailException(message + "; not retried so that nobody is texted twice")

    def _failure(self, err: SmsError) -> Exception:
        """A send that raised before any result: only an outage or rate limit stays retryable."""
        if err.retryable:
            return err
        return AirflowFailException(f"{type(err).__name__}: {err}")

    def _log_problems(self, result: SendResult) -> None:
        from airflow_provider_sms.core.phone import mask_number

        for entry in result.rejected[:_SUMMARY_LIMIT]:
            self.log.warning("not sent to %s: %s (%s)", mask_number(str(entry["to"])), entry["code"], entry["reason"])
        for number in result.unsubscribed[:_SUMMARY_LIMIT]:
            self.log.warning("not sent to %s: unsubscribed", mask_number(number))
        hidden = len(result.rejected) + len(result.unsubscribed) - 2 * _SUMMARY_LIMIT
        if hidden > 0:
            self.log.warning("... and up to %d more; see the XCom result", hidden)


def _retryable_codes() -> frozenset[str]:
    from airflow_provider_sms.core.delivery import RETRYABLE_CODES

    return RETRYABLE_CODES
