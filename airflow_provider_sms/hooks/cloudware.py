"""Cloudware: ``POST /v1/sms/send`` and ``/v1/sms/queue`` (one recipient a call) and ``GET /v1/sms/messages``.

Cloudware takes one recipient per request, so a send to many numbers runs over a bounded pool of
concurrent keep-alive connections (``max_workers``, default 16; never more requests in flight). The
inbound listing is followed through ``next_page`` only while it stays on the connection's host.
API page: https://docs.cloudware.chat (Send a message, Queue a message, Get a list of received messages).
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Iterator, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from airflow_provider_sms.core.answers import require_success
from airflow_provider_sms.core.errors import SmsUnsupportedFeatureError
from airflow_provider_sms.core.listing import Page, read_listing
from airflow_provider_sms.core.pipeline import Call, Outgoing, Reply
from airflow_provider_sms.core.results import DeliveryReport, InboundMessage, SendResult, SentCheck
from airflow_provider_sms.core.timestamps import parse_timestamp
from airflow_provider_sms.hooks.base import SendAt, SmsHook

SEND = "/v1/sms/send"
QUEUE = "/v1/sms/queue"
MESSAGES = "/v1/sms/messages"
RECEIVED = "message_received"
SENT = "message_sent"


class CloudwareHook(SmsHook):
    """Send or queue SMS through Cloudware and list the messages it received.

    :param cloudware_conn_id: connection of type ``cloudware``; password = access token (sent as
        ``Authorization: Bearer <token>``), host = optional base URL, extras ``sender``,
        ``country_code`` and ``timeout``.
    :param max_workers: concurrent requests (and kept-alive connections), default 16.
    """

    conn_name_attr = "cloudware_conn_id"
    default_conn_name = "cloudware_default"
    conn_type = "cloudware"
    hook_name = "Cloudware SMS"
    provider = "cloudware"
    default_host = "https://api.cloudware.chat"
    batch_limit = 1
    default_workers = 16
    supports_send_at = False
    last_delivery_status = "sent"

    def __init__(self, cloudware_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(cloudware_conn_id, **kwargs)
        self.cloudware_conn_id = cloudware_conn_id

    def send_sms(
        self,
        to: str | Iterable[Any],
        message: str,
        *,
        sender: str | None = None,
        send_at: SendAt = None,
        dry_run: bool = False,
    ) -> SendResult:
        """Send now with ``POST /v1/sms/send``, one request per recipient over the pool.

        :param to: recipients; sent as digits with the country code (``2348012345678``).
        :param sender: ``from``; defaults to the connection's ``sender``.
        :param send_at: not supported: Cloudware's API has no delivery time, so any value raises
            ``SmsUnsupportedFeatureError`` (nothing is sent).
        :param dry_run: send nothing; return what the send would do.
        """
        if send_at not in (None, ""):
            raise SmsUnsupportedFeatureError(
                "Cloudware cannot schedule a message (its API has no delivery time), so send_at is refused. "
                "Use a Clickatell or Cellcast connection, which schedule at the provider, or run the task "
                "when the message should go (the DAG's schedule, or a DateTimeSensorAsync before it)",
                provider=self.provider,
            )
        return self._send_each(SEND, to, message, sender, dry_run)

    def queue_sms(
        self, to: str | Iterable[Any], message: str, *, sender: str | None = None, dry_run: bool = False
    ) -> SendResult:
        """Queue with ``POST /v1/sms/queue`` (Cloudware sends it later), one request per recipient."""
        return self._send_each(QUEUE, to, message, sender, dry_run)

    def _send_each(
        self, path: str, to: str | Iterable[Any], message: str, sender: str | None, dry_run: bool
    ) -> SendResult:
        return self.deliver(
            to, message, sender=sender, build=partial(self._call, path), parse=self._parse_send, dry_run=dry_run
        )

    @staticmethod
    def _call(path: str, batch: Sequence[str], out: Outgoing) -> Call:
        (number,) = batch
        body: dict[str, Any] = {"to": number.lstrip("+"), "message": out.message}
        if out.sender:
            body["from"] = out.sender
        return Call("POST", path, json=body)

    def _parse_send(self, batch: Sequence[str], reply: Reply) -> SendResult:
        """Only ``"status": "success"`` is an acceptance; a 2xx with an error is Cloudware's refusal."""
        body = require_success(
            reply.body, reply, provider=self.provider, succeeded=lambda b: b.get("status") == "success"
        )
        data = body.get("data")
        result = SendResult(self.provider)
        result.add_accepted(batch[0], (data.get("id") or data.get("message_id")) if isinstance(data, dict) else None)
        return result

    def iter_messages(
        self, *, since: datetime | str | None = None, stop_at: float | None = None, known: Collection[str] = ()
    ) -> Iterator[InboundMessage]:
        """Yield received messages from ``GET /v1/sms/messages``, following ``next_page`` on the same host.

        Messages listed as sent (``message_sent``) are skipped (their times still end the paging).
        Paging is bounded as ``core.listing`` describes; a naive ``since`` is taken as UTC.

        :param stop_at: a ``time.monotonic()`` deadline for the whole poll.
        :param known: ids of messages at exactly ``since`` already read by an earlier poll.
        """
        cutoff = parse_timestamp(since) if since else None
        return read_listing(
            self._fetch_page,
            MESSAGES,
            self._read_item,
            since=cutoff,
            provider=self.provider,
            known=known,
            stop_at=stop_at,
        )

    def _fetch_page(self, url: Hashable) -> Page:
        reply = self.client.request("GET", str(url))
        body = reply.body if isinstance(reply.body, dict) else {}
        items, next_page = body.get("data"), body.get("next_page")
        return Page(items if isinstance(items, list) else [], str(next_page) if next_page else None)

    def _read_item(self, item: dict[str, Any]) -> tuple[datetime, InboundMessage | None]:
        item = self.scrubbed(item)
        received_at = parse_timestamp(str(item.get("created_at") or item.get("sent_at") or ""))
        if item.get("type") != RECEIVED:
            return received_at, None
        message = self.inbound_message(
            item,
            message_id=item.get("message_id"),
            sender=item.get("from"),
            receiver=item.get("to"),
            text=item.get("message"),
            received_at=received_at,
        )
        return received_at, message

    # --- delivery reports and webhooks ---------------------------------------------------------------

    def get_delivery_reports(self, message_ids: Iterable[str]) -> list[DeliveryReport]:
        """Read ``message_sent`` records from ``GET /v1/sms/messages`` (Cloudware reports a message as
        sent, nothing further); ids not found within the listing's bounds are ``unknown``.

        One listing read serves every id: paging stops once all of them were found.
        """
        wanted = dict.fromkeys(str(m) for m in message_ids if m)
        found: dict[str, DeliveryReport] = {}

        def read(item: dict[str, Any]) -> tuple[datetime, InboundMessage | None]:
            when, message = self._read_item(item)
            message_id = str(item.get("message_id") or "")
            if item.get("type") == SENT and message_id in wanted:
                found[message_id] = self._report(self.scrubbed(item), when)
            return when, message

        listed: set[str] = set()

        def fetch(url: Hashable) -> Page:
            page = self._fetch_page(url)
            listed.update(str(i.get("message_id")) for i in page.items if isinstance(i, dict) and i.get("type") == SENT)
            return Page(page.items, None if listed >= wanted.keys() else page.next)

        for _ in read_listing(fetch, MESSAGES, read, since=None, provider=self.provider):
            pass
        return [found.get(m) or DeliveryReport(self.provider, m, None, "unknown") for m in wanted]

    def confirm_sent(self, numbers: Sequence[str], message: str, *, since: datetime) -> SentCheck | None:
        """Read ``message_sent`` records of ``GET /v1/sms/messages`` back to ``since``: a record to the
        number with this very text is the message taken (with its id). When the listing was read
        completely back past ``since`` (an older item seen, or its last page), a number without such a
        record was certainly not taken; otherwise (the page cap) it stays in doubt."""
        wanted = {n.lstrip("+"): n for n in numbers}
        check = SentCheck()
        oldest: list[datetime] = []
        ended: list[bool] = []

        def read(item: dict[str, Any]) -> tuple[datetime, InboundMessage | None]:
            when, inbound = self._read_item(item)
            oldest[:] = [min([when, *oldest])]
            number = wanted.get(str(item.get("to") or "").lstrip("+"))
            if item.get("type") == SENT and number and when >= since and item.get("message") == message:
                check.found[number] = str(item.get("message_id") or "") or None
            return when, inbound

        def fetch(url: Hashable) -> Page:
            page = self._fetch_page(url)
            ended[:] = [page.next is None]
            return page

        for _ in read_listing(fetch, MESSAGES, read, since=since, provider=self.provider):
            pass
        if (oldest and oldest[0] < since) or ended == [True]:
            check.absent = set(numbers) - set(check.found)
        return check

    def _report(self, item: dict[str, Any], when: datetime | None) -> DeliveryReport:
        return DeliveryReport(
            provider=self.provider,
            message_id=str(item.get("message_id") or ""),
            to=self.number_or_none(item.get("to")),
            status="sent",
            provider_status=SENT,
            at=when,
            raw=item,
        )

    def parse_webhook(self, payload: Any) -> tuple[list[InboundMessage], list[DeliveryReport]]:
        """Cloudware's webhook calls: ``message_received`` (a reply) and ``message_sent`` (a report)."""
        messages, reports = [], []
        for item in payload if isinstance(payload, list) else [payload]:
            if not isinstance(item, dict):
                continue
            try:
                when, message = self._read_item(item)
            except (ValueError, OverflowError):  # no readable time: a reply is still recorded (flagged)
                if item.get("type") == RECEIVED:
                    messages.append(self._webhook_reply(self.scrubbed(item)))
                continue
            if message is not None:
                messages.append(message)
            elif item.get("type") == SENT and item.get("message_id"):
                reports.append(self._report(self.scrubbed(item), when))
        return messages, reports

    def _webhook_reply(self, item: dict[str, Any]) -> InboundMessage:
        return self.webhook_message(
            item,
            message_id=item.get("message_id"),
            sender=item.get("from"),
            receiver=item.get("to"),
            text=item.get("message"),
            received_at=item.get("created_at") or item.get("sent_at"),
        )

    def check_credentials(self) -> None:
        self.client.request("GET", MESSAGES)
