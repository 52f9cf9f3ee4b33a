"""``CloudwareQueueSmsOperator``: queue messages with Cloudware's ``POST /v1/sms/queue``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_sms._compat import Context
from airflow_provider_sms.core.templated import list_from_template
from airflow_provider_sms.operators.base import SmsBaseOperator


class CloudwareQueueSmsOperator(SmsBaseOperator):
    """Queue an SMS with Cloudware (one request per recipient over a bounded pool).

    :param to: recipients: a list, a comma-separated string or an XCom list. (templated)
    :param message: the text, or a path to a ``.txt`` template. (templated)
    :param sender: ``from``; defaults to the connection's. (templated)
    :param max_workers: concurrent requests (default 16).
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

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_sms.hooks.cloudware import CloudwareHook

        hook = CloudwareHook(self.cloudware_conn_id, max_workers=self.max_workers, **self.hook_kwargs)
        return self.deliver(
            context, lambda: hook.queue_sms(list_from_template(self.to), self.message, sender=self.sender)
        )
