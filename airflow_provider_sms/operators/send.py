"""``SendSmsOperator``: the provider-neutral send, with failover, personalized messages and dry runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, ClassVar

from airflow_provider_sms._compat import Context
from airflow_provider_sms.core.errors import SmsValidationError
from airflow_provider_sms.operators.base import SmsBaseOperator, coerce_recipients


class SendSmsOperator(SmsBaseOperator):
    """Send an SMS through whichever provider ``sms_conn_id`` is (Cellcast, Clickatell or Cloudware).

    :param sms_conn_id: the connection; its type picks the hook. (templated)
    :param to: recipients: a list, a comma-separated string, or an XCom list. (templated)
    :param message: the text, or a path to a ``.txt`` template. (templated)
    :param messages: personalized sends instead of ``to``/``message``: a list of
        ``{"to": ..., "message": ...}`` (or ``(to, message)`` rows, e.g. from a SQL task). Identical texts
        are grouped into provider batches; the groups go out over a bounded pool. (templated)
    :param sender: sender ID; defaults to the connection's ``sender``. (templated)
    :param fallback_conn_ids: connections to try, in order, for recipients the previous provider did
        not process (auth, credit, outage after retries). Nobody is sent to twice. (templated)
    :param dry_run: send nothing; return the normalized and rejected numbers, encoding and segments.
    :param fail_on_rejected: fail after pushing the result when anyone was rejected or unsubscribed.
    :param max_workers: concurrent requests for per-recipient providers and personalized groups.

    Retries: the task is left retryable only if nobody was accepted and every failure was an outage or
    rate limit; otherwise it fails without retry, so an Airflow retry never texts anyone twice. The
    providers offer no idempotency key, so that is the strongest guarantee available.
    """

    template_fields: Sequence[str] = ("sms_conn_id", "to", "message", "messages", "sender", "fallback_conn_ids")
    template_ext: Sequence[str] = (".txt",)
    template_fields_renderers: ClassVar[dict[str, str]] = {"messages": "json"}

    def __init__(
        self,
        *,
        sms_conn_id: str,
        to: Any = None,
        message: str | None = None,
        messages: Any = None,
        sender: str | None = None,
        fallback_conn_ids: Sequence[str] = (),
        dry_run: bool = False,
        max_workers: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if messages is None and (to is None or message is None):
            raise SmsValidationError(f"{self.task_id}: give `to` and `message`, or `messages`")
        if messages is not None and (to is not None or message is not None):
            raise SmsValidationError(f"{self.task_id}: give either `to`/`message` or `messages`, not both")
        self.sms_conn_id = sms_conn_id
        self.to = to
        self.message = message
        self.messages = messages
        self.sender = sender
        self.fallback_conn_ids = fallback_conn_ids
        self.is_dry_run = dry_run  # BaseOperator already has a dry_run() method
        self.max_workers = max_workers

    def _groups(self) -> dict[str, list[str]]:
        from airflow_provider_sms.core.delivery import group_messages
        from airflow_provider_sms.core.phone import split_recipients

        if self.messages is not None:
            return group_messages(coerce_recipients(self.messages))
        return {str(self.message): split_recipients(coerce_recipients(self.to))}

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_sms.core.delivery import send_grouped, send_with_failover
        from airflow_provider_sms.hooks import get_sms_hook

        groups = self._groups()
        hook_kwargs = {"max_workers": self.max_workers} if self.max_workers else {}
        primary = get_sms_hook(self.sms_conn_id, **hook_kwargs)
        if self.is_dry_run:
            return self._dry_run(primary, groups)
        fallbacks = [str(c) for c in (coerce_recipients(self.fallback_conn_ids) or [])]
        factories: list[Callable[[], Any]] = [lambda: primary]
        factories += [partial(get_sms_hook, conn_id, **hook_kwargs) for conn_id in fallbacks]

        def send_one(to: list[str], text: str) -> Any:
            return send_with_failover(factories, to, text, sender=self.sender)

        if len(groups) == 1:
            ((text, to),) = groups.items()
            return self.deliver(context, lambda: send_one(to, text))
        workers = self.max_workers or primary.max_workers
        return self.deliver(context, lambda: send_grouped(groups, send_one, primary.provider, max_workers=workers))

    def _dry_run(self, hook: Any, groups: dict[str, list[str]]) -> dict[str, Any]:
        from airflow_provider_sms.core.delivery import plan_dry_run

        plan = plan_dry_run(
            groups, provider=hook.provider, default_region=hook.default_region, max_segments=hook.max_segments
        )
        count = sum(len(m["recipients"]) for m in plan["messages"])
        self.log.info(
            "dry run: would send %d SMS part(s) to %d recipient(s); nothing sent", plan["total_segments"], count
        )
        return plan
