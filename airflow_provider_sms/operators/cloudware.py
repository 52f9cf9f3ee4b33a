"""``CloudwareQueueSmsOperator``: queue messages with Cloudware's ``POST /v1/sms/queue``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_sms._compat import Context
from airflow_provider_sms.operators.base import SmsBaseOperator, TimedSender

if TYPE_CHECKING:
    from airflow_provider_sms.core.results import SendResult


class CloudwareQueueSmsOperator(SmsBaseOperator):
    """Queue an SMS with Cloudware (one request per recipient over a bounded pool).

    :param to: recipients: a list, a comma-separated string or an XCom list. (templated)
    :param message: the text, or a path to a ``.txt`` template. (templated)
    :param sender: ``from``; defaults to the connection's. (templated)
    :param max_workers: concurrent requests (default 16).
    :param quiet_hours: ``("21:00", "08:00")``: recipients whose local time is inside the window are
        queued when it ends (the task defers until then); the others now.
    :param cloudware_conn_id: the ``cloudware`` connection.
    """

    template_fields: Sequence[str] = ("to", "message", "sender")
    template_ext: Sequence[str] = (".txt",)

    def __init__(
        self,
        *,
        to: Any,
        message: str,
        sender: str | None = None,
        max_workers: int | None = None,
        cloudware_conn_id: str = "cloudware_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.to = to
        self.message = message
        self.sender = sender
        self.max_workers = max_workers
        self.cloudware_conn_id = cloudware_conn_id

    def timed_sender(self) -> TimedSender:
        from airflow_provider_sms.hooks.cloudware import CloudwareHook

        hook = CloudwareHook(self.cloudware_conn_id, max_workers=self.max_workers, **self.hook_kwargs)

        def send(to: list[str], message: str, send_at: datetime | None) -> SendResult:
            return hook.queue_sms(to, message, sender=self.sender)

        return TimedSender(hook.provider, hook.default_region, False, send)

    def execute(self, context: Context) -> dict[str, Any]:
        return self.send_one_message(context, self.to, self.message)
