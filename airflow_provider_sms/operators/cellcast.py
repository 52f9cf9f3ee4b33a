"""Cellcast operators: chat messages and MMS, thin wrappers over ``CellcastHook``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_sms._compat import Context
from airflow_provider_sms.operators.base import SmsBaseOperator, TimedSender

if TYPE_CHECKING:
    from airflow_provider_sms.core.results import SendResult


class CellcastSendChatOperator(SmsBaseOperator):
    """Send a chat message with Cellcast's ``POST /api/v1/chat``.

    :param to: recipients: a list, a comma-separated string or an XCom list. (templated)
    :param message: the text, or a path to a ``.txt`` template. (templated)
    :param sms_template_id: Cellcast SMS template id. (templated)
    :param rms_template_id: Cellcast RMS template id. (templated)
    :param sender: sender ID; defaults to the connection's. (templated)
    :param country_code: ``countryCode``; defaults to the connection's (61).
    :param cellcast_conn_id: the ``cellcast`` connection.
    """

    template_fields: Sequence[str] = ("to", "message", "sms_template_id", "rms_template_id", "sender")
    template_ext: Sequence[str] = (".txt",)

    def __init__(
        self,
        *,
        to: Any,
        message: str,
        sms_template_id: str | None = None,
        rms_template_id: str | None = None,
        sender: str | None = None,
        country_code: str | None = None,
        cellcast_conn_id: str = "cellcast_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.to = to
        self.message = message
        self.sms_template_id = sms_template_id
        self.rms_template_id = rms_template_id
        self.sender = sender
        self.country_code = country_code
        self.cellcast_conn_id = cellcast_conn_id

    def timed_sender(self) -> TimedSender:
        from airflow_provider_sms.hooks.cellcast import CellcastHook

        hook = CellcastHook(self.cellcast_conn_id, **self.hook_kwargs)

        def send(to: list[str], message: str, send_at: datetime | None) -> SendResult:
            return hook.send_chat(
                to,
                message,
                sender=self.sender,
                sms_template_id=self.sms_template_id,
                rms_template_id=self.rms_template_id,
                country_code=self.country_code,
            )

        return TimedSender(hook.provider, hook.default_region, False, send)  # the chat API does not schedule

    def execute(self, context: Context) -> dict[str, Any]:
        return self.send_one_message(context, self.to, self.message)


class CellcastSendMmsOperator(SmsBaseOperator):
    """Send an MMS with Cellcast's ``POST /api/v1/gatewaymms``.

    :param to: recipients (Australian numbers): a list, a comma-separated string or an XCom list. (templated)
    :param message: the text, or a path to a ``.txt`` template. (templated)
    :param media: path to a jpg/jpeg/png of at most 230 KB, checked before sending. (templated)
    :param gif_url: public URL of a ``.gif``. (templated)
    :param sender: sender ID; defaults to the connection's. (templated)
    :param cellcast_conn_id: the ``cellcast`` connection.
    """

    template_fields: Sequence[str] = ("to", "message", "media", "gif_url", "sender")
    template_ext: Sequence[str] = (".txt",)

    def __init__(
        self,
        *,
        to: Any,
        message: str,
        media: str | None = None,
        gif_url: str | None = None,
        sender: str | None = None,
        country_code: str | None = None,
        cellcast_conn_id: str = "cellcast_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.to = to
        self.message = message
        self.media = media
        self.gif_url = gif_url
        self.sender = sender
        self.country_code = country_code
        self.cellcast_conn_id = cellcast_conn_id

    def timed_sender(self) -> TimedSender:
        from airflow_provider_sms.hooks.cellcast import CellcastHook

        hook = CellcastHook(self.cellcast_conn_id, **self.hook_kwargs)

        def send(to: list[str], message: str, send_at: datetime | None) -> SendResult:
            return hook.send_mms(
                to,
                message,
                media=self.media or None,
                gif_url=self.gif_url or None,
                sender=self.sender,
                country_code=self.country_code,
            )

        return TimedSender(hook.provider, hook.default_region, False, send)  # the MMS API does not schedule

    def execute(self, context: Context) -> dict[str, Any]:
        return self.send_one_message(context, self.to, self.message)
