"""``ClickatellSendMessageOperator``: immediate or scheduled sends through ``ClickatellHook``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_sms._compat import Context
from airflow_provider_sms.core.errors import SmsValidationError
from airflow_provider_sms.operators.base import SmsBaseOperator, TimedSender

if TYPE_CHECKING:
    from airflow_provider_sms.core.results import SendResult


class ClickatellSendMessageOperator(SmsBaseOperator):
    """Send an SMS with Clickatell's ``POST /messages``, now or at ``send_at``.

    :param to: recipients: a list, a comma-separated string or an XCom list. (templated)
    :param message: the text, or a path to a ``.txt`` template. (templated)
    :param send_at: when Clickatell should deliver: an aware datetime, an ISO-8601 string with an
        offset, or a ``timedelta`` from when the task runs. Naive and past times fail the task. (templated)
    :param sender: ``from``; defaults to the connection's. (templated)
    :param validity_period: minutes Clickatell keeps trying to deliver.
    :param client_message_id: your reference for the message. (templated)
    :param request_format: ``json`` or ``xml``; defaults to the connection's.
    :param quiet_hours: ``("21:00", "08:00")``: recipients whose local time is inside the window get the
        message when it ends (Clickatell holds it); the others now. Not with ``send_at``.
    :param clickatell_conn_id: the ``clickatell`` connection.
    """

    template_fields: Sequence[str] = ("to", "message", "send_at", "sender", "client_message_id")
    template_ext: Sequence[str] = (".txt",)

    def __init__(
        self,
        *,
        to: Any,
        message: str,
        send_at: datetime | str | timedelta | None = None,
        sender: str | None = None,
        validity_period: int | None = None,
        client_message_id: str | None = None,
        request_format: str | None = None,
        clickatell_conn_id: str = "clickatell_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if send_at is not None and self.quiet_hours is not None:
            raise SmsValidationError(f"{self.task_id}: send_at fixes the delivery time; drop it or quiet_hours")
        self.to = to
        self.message = message
        self.send_at = send_at
        self.sender = sender
        self.validity_period = validity_period
        self.client_message_id = client_message_id
        self.request_format = request_format
        self.clickatell_conn_id = clickatell_conn_id

    def timed_sender(self) -> TimedSender:
        from airflow_provider_sms.hooks.clickatell import ClickatellHook

        hook = ClickatellHook(self.clickatell_conn_id, **self.hook_kwargs)

        def send(to: list[str], message: str, send_at: datetime | None) -> SendResult:
            return hook.send_message(
                to,
                message,
                sender=self.sender,
                send_at=send_at or self.send_at or None,
                validity_period=self.validity_period,
                client_message_id=self.client_message_id,
                request_format=self.request_format,
            )

        return TimedSender(hook.provider, hook.default_region, True, send)

    def execute(self, context: Context) -> dict[str, Any]:
        return self.send_one_message(context, self.to, self.message)
