"""What every SMS operator does after calling its hook: log, push the result, decide fail or retry.

The rule that keeps Airflow retries from texting anyone twice (``SendResult.retry_safe``, from the
error classes' ``retryable``): a task is left retryable only when the provider accepted nobody and
every failure means "not processed" (an outage or rate limit). Bad input,
auth, credit and rejection errors, ``delivery_unknown``, and any send where someone was already
accepted fail the task without retries; the full result is in XCom either way, so a follow-up task
can resend to exactly the recipients that did not get the message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow_provider_sms._compat import AirflowFailException, BaseOperator, Context
from airflow_provider_sms.core.errors import SmsError
from airflow_provider_sms.core.guard import DEFAULT_SEND_TIMEOUT

if TYPE_CHECKING:
    from airflow_provider_sms.core.results import SendResult

_SUMMARY_LIMIT = 10


class SmsBaseOperator(BaseOperator):
    """Shared execution for the SMS operators.

    :param fail_on_rejected: fail the task (after pushing the result) when any recipient was rejected
        or unsubscribed. With False, the task succeeds as long as the provider was reached.
    :param send_timeout: seconds the send may take in all, retries included (default 600); recipients
        not tried by then are reported ``provider_unavailable``, nothing sent to them.
    """

    ui_color = "#d6f5e3"

    def __init__(
        self, *, fail_on_rejected: bool = True, send_timeout: float | None = DEFAULT_SEND_TIMEOUT, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.fail_on_rejected = fail_on_rejected
        self.send_timeout = send_timeout

    @property
    def hook_kwargs(self) -> dict[str, Any]:
        """What every operator passes to its hook."""
        return {"send_timeout": self.send_timeout}

    def deliver(self, context: Context, send: Callable[[], SendResult]) -> dict[str, Any]:
        """Run ``send`` and turn its outcome into an XCom value, a failure, or a retry."""
        try:
            result = send()
        except SmsError as err:
            if err.result is None:
                raise self.failure(err) from err
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
        message = (
            f"{len(result.rejected)} recipient(s) rejected and {len(result.unsubscribed)} unsubscribed of "
            f"{len(result.accepted) + len(result.rejected) + len(result.unsubscribed)}; the full result is in XCom"
        )
        if result.retry_safe:
            raise SmsError(message + "; nothing was processed, so the task may be retried safely")
        raise AirflowFailException(message + "; not retried so that nobody is texted twice")

    def failure(self, err: SmsError) -> Exception:
        """What to raise for a send that failed before any result: only an outage or rate limit stays
        retryable; anything else fails the task for good."""
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
