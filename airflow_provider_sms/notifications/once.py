"""One send per recipient for a task instance, through its send ledger (``state.ledger``).

What the notifier, the approval question and escalation steps call instead of ``hook.send_sms``: a
callback that runs twice, or a try that repeats after its worker died, texts nobody twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any


def send_sms_once(
    context: Mapping[str, Any],
    hook: Any,
    to: Any,
    message: str,
    *,
    sender: str | None = None,
    send_at: Any = None,
    key: str | None = None,
    resend_in_doubt: bool = False,
) -> Any:
    """``hook.send_sms`` at most once per recipient for this task instance and ``key``, across callbacks
    that run twice and tries that repeat (the task's send ledger, ``state.ledger``); returns the
    ``SendResult`` of all of them. Without a task instance in ``context`` (a DAG-level callback, the
    triggerer), it is a plain send.

    :param key: names the send in the ledger (default: the text). The approval question passes one that
        stays the same across tries (``"hitl-question"``), since its text carries a per-try reference:
        a retried question is then not texted again, and its earlier result comes back.
    :param resend_in_doubt: resend to recipients whose request may have gone out without an answer.
    """
    from airflow_provider_sms.core.delivery import send_once
    from airflow_provider_sms.state.ledger import ledger_for

    def plain(numbers: Any) -> Any:
        return hook.send_sms(numbers, message, sender=sender, send_at=send_at)

    try:
        ledger = ledger_for(context)
        if ledger is not None:
            ledger.view()
    except Exception as exc:  # no ledger to be had: a plain send is better than no alert
        logging.getLogger(__name__).warning("sending without the send ledger: %s", type(exc).__name__)
        ledger = None
    if ledger is None:
        return plain(to)

    def confirm(conn_id: str, numbers: list[str], text: str, since: Any) -> Any:
        from airflow_provider_sms.hooks import get_sms_hook

        return get_sms_hook(conn_id).confirm_sent(numbers, text, since=since)

    return send_once(
        ledger,
        to,
        message,
        plain,
        provider=hook.provider,
        region=hook.default_region,
        resend_in_doubt=resend_in_doubt,
        confirm=confirm,
        key=key,
    )
