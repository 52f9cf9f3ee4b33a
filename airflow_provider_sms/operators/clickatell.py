"""``ClickatellSendMessageOperator``: immediate or scheduled sends through ``ClickatellHook``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_sms._compat import Context
from airflow_provider_sms.core.templated import list_from_template
from airflow_provider_sms.operators.base import SmsBaseOperator


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
        self.to = to
        self.message = message
        self.send_at = send_at
        self.sender = sender
        self.validity_period = validity_period
        self.client_message_id = client_message_id
        self.request_format = request_format
        self.clickatell_conn_id = clickatell_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_sms.hooks.clickatell import ClickatellHook

        hook = ClickatellHook(self.clickatell_conn_id, **self.hook_kwargs)
        return self.deliver(
            context,
            lambda: hook.send_message(
                list_from_template(self.to),
                self.message,
                sender=self.sender,
                send_at=self.send_at or None,
                validity_period=self.validity_period,
                client_message_id=self.client_message_id,
                request_format=self.request_format,
            ),
        )
