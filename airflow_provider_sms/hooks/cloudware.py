"""Cloudware: ``POST /v1/sms/send`` and ``/v1/sms/queue`` (one recipient a call) and ``GET /v1/sms/messages``.

Cloudware takes one recipient per request, so a send to many numbers runs over a bounded pool of
concurrent keep-alive connections (``max_workers``, default 16; never more requests in flight). The
inbound listing is followed through ``next_page`` only while it stays on the connection's host.
API page: https://docs.cloudware.chat (Send a message, Queue a message, Get a list of received messages).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from airflow_provider_sms.core.batching import send_batches
from airflow_provider_sms.core.errors import SmsValidationError
from airflow_provider_sms.core.phone import normalize_number
from airflow_provider_sms.core.results import InboundMessage, SendResult, derive_message_id
from airflow_provider_sms.core.timestamps import parse_timestamp
from airflow_provider_sms.hooks.base import SmsHook

SEND = "/v1/sms/send"
QUEUE = "/v1/sms/queue"
MESSAGES = "/v1/sms/messages"
RECEIVED = "message_received"


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
    hook_name = "Cloudware"
    provider = "cloudware"
    default_host = "https://api.cloudware.chat"
    batch_limit = 1
    default_workers = 16

    def __init__(self, cloudware_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(cloudware_conn_id, **kwargs)
        self.cloudware_conn_id = cloudware_conn_id

    def send_sms(self, to: str | Iterable[Any], message: str, *, sender: str | None = None) -> SendResult:
        """Send now with ``POST /v1/sms/send``, one request per recipient over the pool.

        :param to: recipients; sent as digits with the country code (``2348012345678``).
        :param sender: ``from``; defaults to the connection's ``sender``.
        """
        return self._send_each(SEND, to, message, sender)

    def queue_sms(self, to: str | Iterable[Any], message: str, *, sender: str | None = None) -> SendResult:
        """Queue with ``POST /v1/sms/queue`` (Cloudware sends it later), one request per recipient."""
        return self._send_each(QUEUE, to, message, sender)

    def _send_each(self, path: str, to: str | Iterable[Any], message: str, sender: str | None) -> SendResult:
        numbers, result, chosen_sender, _ = self.prepare_send(to, message, sender)

        def send(batch: Sequence[str]) -> SendResult:
            (number,) = batch
            body: dict[str, Any] = {"to": number.lstrip("+"), "message": message}
            if chosen_sender:
                body["from"] = chosen_sender
            reply = self.client.request("POST", path, json_body=body)
            return self._map_send(number, reply.body, reply.attempts)

        return send_batches(result, [[n] for n in numbers], send, max_workers=self.max_workers)

    def _map_send(self, number: str, body: Any, attempts: int) -> SendResult:
        result = SendResult(self.provider, requests=attempts)
        body = body if isinstance(body, dict) else {}
        status = body.get("status")
        if status not in (None, "success"):
            reason = body.get("message") or body.get("error") or f"status {status!r}"
            result.add_rejected(number, "rejected", str(reason))
            return result
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        message_id = data.get("id") or data.get("message_id")
        result.accepted.append({"to": number, "message_id": str(message_id) if message_id is not None else None})
        return result

    def iter_messages(self, *, since: datetime | str | None = None) -> Iterator[InboundMessage]:
        """Yield received messages from ``GET /v1/sms/messages``, following ``next_page``.

        Messages listed as sent (``message_sent``) are skipped. Pages come newest first, so paging
        stops after the first page holding a message older than ``since``; within a page every
        message is checked on its own, so the order inside a page does not matter. A naive ``since``
        is taken as UTC. Only one page is held in memory at a time.
        """
        cutoff = parse_timestamp(since) if since else None
        url: str | None = MESSAGES
        visited: set[str] = set()
        while url and url not in visited:
            visited.add(url)
            reply = self.client.request("GET", url)
            body = reply.body if isinstance(reply.body, dict) else {}
            reached_cutoff = False
            for item in body.get("data") or []:
                if not isinstance(item, dict):
                    continue
                stamp = item.get("created_at") or item.get("sent_at")
                received_at = parse_timestamp(stamp) if stamp else None
                if cutoff and (received_at is None or received_at < cutoff):
                    reached_cutoff = True
                    continue
                if item.get("type") == RECEIVED and received_at is not None:
                    yield self._inbound(item, received_at)
            if reached_cutoff:
                return
            next_page = body.get("next_page")
            url = str(next_page) if next_page else None

    def _inbound(self, item: dict[str, Any], received_at: datetime) -> InboundMessage:
        raw_from = str(item.get("from") or "")
        raw_to = item.get("to")
        text = str(item.get("message") or "")
        return InboundMessage(
            provider=self.provider,
            message_id=str(item.get("message_id") or "") or derive_message_id(raw_from, received_at.isoformat(), text),
            from_number=self._number_or_raw(raw_from),
            to_number=self._number_or_raw(str(raw_to)) if raw_to else None,
            text=text,
            received_at=received_at,
            raw=item,
        )

    def _number_or_raw(self, raw: str) -> str:
        try:
            return normalize_number(raw, self.default_region)
        except SmsValidationError:
            return raw

    def check_credentials(self) -> None:
        self.client.request("GET", MESSAGES)
