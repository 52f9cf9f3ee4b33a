"""``SmsNotifier`` (alias ``send_sms_notification``): an SMS from any Airflow callback.

Use it as ``on_failure_callback=SmsNotifier(...)`` on a DAG or task (or any other callback). The message
is templated from the callback context; the default names the DAG, task, run, try and exception and is
cut to fit one GSM-7 SMS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_sms._compat import BaseNotifier, Context

DEFAULT_MESSAGE = (
    "Airflow {{ (ti.state if ti is defined and ti and ti.state else 'alert') | upper }}: "
    "{{ dag.dag_id if dag is defined and dag else '' }}"
    "{% if ti is defined and ti %}.{{ ti.task_id }} try {{ ti.try_number }}{% endif %}"
    "{% if run_id is defined %} run {{ run_id }}{% endif %}"
    "{% if exception is defined and exception %}: {{ exception }}{% endif %}"
)
_ONE_SEGMENT = 160


def fit_one_segment(text: str) -> str:
    """Shorten ``text`` to one SMS part (GSM-7 when possible), ending with ``...`` when cut."""
    from airflow_provider_sms.core.encoding import GSM7_BASIC, GSM7_EXTENSION, count_segments

    gsm = "".join(c if c in GSM7_BASIC or c in GSM7_EXTENSION else "?" for c in " ".join(text.split()))
    while (info := count_segments(gsm)).segments > 1:
        gsm = gsm[: max(len(gsm) - max(info.units - _ONE_SEGMENT + 3, 1), 0)].rstrip() + "..."
    return gsm


class SmsNotifier(BaseNotifier):
    """Send an SMS when a callback fires.

    :param sms_conn_id: a ``cellcast``, ``clickatell`` or ``cloudware`` connection. (templated)
    :param to: recipients: a list or a comma-separated string. (templated)
    :param message: the text, templated with the callback context (``dag``, ``ti``, ``run_id``,
        ``exception``...). When omitted, a summary that fits one GSM-7 SMS is sent.
    :param sender: sender ID; defaults to the connection's. (templated)
    """

    template_fields: Sequence[str] = ("sms_conn_id", "to", "message", "sender")

    def __init__(
        self,
        *,
        sms_conn_id: str,
        to: Any,
        message: str | None = None,
        sender: str | None = None,
    ) -> None:
        self._default_message = message is None
        self.sms_conn_id = sms_conn_id
        self.to = to
        self.message = DEFAULT_MESSAGE if message is None else message
        self.sender = sender
        super().__init__()

    def notify(self, context: Context) -> None:
        from airflow_provider_sms.core.templated import list_from_template
        from airflow_provider_sms.hooks import get_sms_hook

        text = fit_one_segment(self.message) if self._default_message else self.message
        result = get_sms_hook(self.sms_conn_id).send_sms(list_from_template(self.to), text, sender=self.sender)
        self.log.info("SMS notification %s", result.summary())


send_sms_notification = SmsNotifier
