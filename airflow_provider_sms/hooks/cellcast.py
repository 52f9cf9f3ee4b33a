"""Cellcast: plain SMS (``/api/v1/gateway``), chat (``/api/v1/chat``), MMS (``/api/v1/gatewaymms``), replies.

This module only maps our requests to Cellcast's wire format and Cellcast's answers back to
``SendResult``/``InboundMessage``; validation, numbers, batching, retries and pacing come from ``core``.
Cellcast takes up to 1,000 numbers a call, sends SMS and MMS to Australian (+61) numbers only, and
allows 15 calls a second per account, so this hook paces itself at 14.
API pages: https://developer.cellcast.com (Send Chat Message, Send MMS, Quick/Bulk Send SMS, Get List Responses).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow_provider_sms.core.batching import chunked, send_batches
from airflow_provider_sms.core.errors import SmsRejectedError, SmsValidationError
from airflow_provider_sms.core.phone import normalize_number, region_for_country_code
from airflow_provider_sms.core.results import InboundMessage, SendResult, derive_message_id
from airflow_provider_sms.core.timestamps import as_utc, parse_timestamp
from airflow_provider_sms.core.validation import load_mms_media, resolve_send_time, validate_gif_url
from airflow_provider_sms.hooks.base import SmsHook

GATEWAY = "/api/v1/gateway"
CHAT = "/api/v1/chat"
MMS = "/api/v1/gatewaymms"
RESPONSES = "/api/v1/apiClient/getResponses"
_AU = "+61"
_CONTACT_JUNK = re.compile(r"[\s\"'\[\]]")


def to_crlf(text: str) -> str:
    """Cellcast writes a new line as ``\\r\\n``."""
    return re.sub(r"\r?\n", "\r\n", text)


def format_schedule(moment: datetime) -> str:
    """UTC in the documented example form, ``2024-08-14T14:58:00.981Z``."""
    utc = as_utc(moment)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


class CellcastHook(SmsHook):
    """Send SMS, chat and MMS messages through Cellcast and list the replies it received.

    :param cellcast_conn_id: connection of type ``cellcast``; password = API token (sent as
        ``Authorization: Bearer <token>``), host = optional base URL, extras ``sender``,
        ``country_code`` (default ``61``) and ``timeout``.
    :param batch_size: numbers per call, at most 1,000 (the documented limit).
    """

    conn_name_attr = "cellcast_conn_id"
    default_conn_name = "cellcast_default"
    conn_type = "cellcast"
    hook_name = "Cellcast"
    provider = "cellcast"
    default_host = "https://api.cellcast.com"
    batch_limit = 1000
    default_workers = 4
    default_country_code = "61"
    requests_per_second = 14.0

    def __init__(self, cellcast_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(cellcast_conn_id, **kwargs)
        self.cellcast_conn_id = cellcast_conn_id

    # --- sends ------------------------------------------------------------------------------------

    def send_sms(
        self,
        contacts: str | Iterable[Any],
        message: str,
        *,
        sender: str | None = None,
        country_code: str | int | None = None,
        schedule_at: datetime | str | timedelta | None = None,
    ) -> SendResult:
        """Send a plain SMS with ``POST /api/v1/gateway``, 1,000 numbers a call.

        :param contacts: numbers (list, or comma-separated string) in any form Cellcast accepts.
        :param message: the text; new lines are sent as ``\\r\\n``.
        :param sender: sender ID; blank uses the connection's ``sender`` or Cellcast's shared number.
        :param country_code: Cellcast accepts only 61.
        :param schedule_at: an aware datetime, ISO-8601 string or ``timedelta`` from now; sent as UTC.
            Naive and past times are refused.
        """
        text = to_crlf(message or "")
        code = self._au_country_code(country_code)
        when = resolve_send_time(schedule_at)
        numbers, result, chosen_sender, _ = self.prepare_send(contacts, text, sender)
        numbers = self._australian_only(numbers, result)
        base: dict[str, Any] = {"message": text}
        if chosen_sender:
            base["sender"] = chosen_sender
        if code:
            base["countryCode"] = code
        if when:
            base["scheduleAt"] = format_schedule(when)

        def send(batch: Sequence[str]) -> SendResult:
            reply = self.client.request("POST", GATEWAY, json_body={**base, "contacts": list(batch)})
            return self._parse_queue_answer(batch, reply.body, reply.attempts, GATEWAY)

        return self._fan_out(numbers, send, result)

    def send_chat(
        self,
        numbers: str | Iterable[Any],
        message: str,
        *,
        sender: str | None = None,
        sms_template_id: str | None = None,
        rms_template_id: str | None = None,
        country_code: str | int | None = None,
    ) -> SendResult:
        """Send a chat message with ``POST /api/v1/chat``, 1,000 numbers a call.

        :param numbers: recipients; sent in ``+61400000000`` form.
        :param sms_template_id: Cellcast SMS template id (``smsTemplateId``).
        :param rms_template_id: Cellcast RMS template id (``rmsTemplateId``).
        :param country_code: ``countryCode``; defaults to the connection's (61).
        """
        text = to_crlf(message or "")
        code = str(country_code or self._extra("country_code") or self.default_country_code).lstrip("+")
        to, result, chosen_sender, _ = self.prepare_send(numbers, text, sender, region=region_for_country_code(code))
        base: dict[str, Any] = {"message": text, "countryCode": code}
        if chosen_sender:
            base["sender"] = chosen_sender
        if sms_template_id:
            base["smsTemplateId"] = str(sms_template_id)
        if rms_template_id:
            base["rmsTemplateId"] = str(rms_template_id)

        def send(batch: Sequence[str]) -> SendResult:
            reply = self.client.request("POST", CHAT, json_body={**base, "number": list(batch)})
            return self._parse_chat_answer(batch, reply.body, reply.attempts)

        return self._fan_out(to, send, result)

    def send_mms(
        self,
        contacts: str | Iterable[Any],
        message: str,
        *,
        media: str | Path | bytes | None = None,
        gif_url: str | None = None,
        sender: str | None = None,
        country_code: str | int | None = None,
    ) -> SendResult:
        """Send an MMS with ``POST /api/v1/gatewaymms`` (multipart), 1,000 numbers a call.

        :param media: a path or the bytes of a jpg/jpeg/png of at most 230 KB, checked before sending.
        :param gif_url: a public URL of a ``.gif`` (GIFs cannot be uploaded).
        """
        text = to_crlf(message or "")
        if not text.strip():
            raise SmsValidationError("the MMS message is empty; give the text to send")
        code = self._au_country_code(country_code)
        gif = validate_gif_url(gif_url)
        upload = load_mms_media(media) if media is not None else None
        if upload is None and gif is None:
            raise SmsValidationError("an MMS needs media (a jpg/png of at most 230 KB) or a gif_url")
        numbers, result, chosen_sender, _ = self.prepare_send(contacts, text, sender, check_text=False)
        numbers = self._australian_only(numbers, result)
        fields: list[tuple[str, Any]] = [("message", (None, text))]
        if chosen_sender:
            fields.append(("sender", (None, chosen_sender)))
        if code:
            fields.append(("countryCode", (None, code)))
        if gif:
            fields.append(("gif", (None, gif)))
        if upload:
            fields.append(("media", upload))

        def send(batch: Sequence[str]) -> SendResult:
            parts = [*fields, ("contacts", (None, json.dumps(list(batch))))]
            reply = self.client.request("POST", MMS, files=parts)
            return self._parse_queue_answer(batch, reply.body, reply.attempts, MMS)

        return self._fan_out(numbers, send, result)

    # --- inbound ----------------------------------------------------------------------------------

    def iter_messages(self, *, since: datetime | str | None = None) -> Iterator[InboundMessage]:
        """Yield replies from ``GET /api/v1/apiClient/getResponses``, newest first, down to ``since``.

        Pages are newest first, so paging stops at the first page holding a reply older than
        ``since``; items on that page are still filtered one by one, so the order within a page does
        not matter. A naive ``since`` is taken as UTC.
        """
        cutoff = parse_timestamp(since) if since else None
        page = 1
        previous: list[str] | None = None
        while True:
            reply = self.client.request("GET", RESPONSES, params={"page": page})
            data = reply.body.get("data") if isinstance(reply.body, dict) else None
            items = data.get("items") if isinstance(data, dict) else None
            if not items:
                return
            messages = [self._inbound(item) for item in items if isinstance(item, dict)]
            ids = [m.message_id for m in messages]
            if ids == previous:  # a server that ignores ?page= must not loop us forever
                return
            previous = ids
            reached_cutoff = False
            for msg in messages:
                if cutoff and msg.received_at < cutoff:
                    reached_cutoff = True
                    continue
                yield msg
            if reached_cutoff:
                return
            page += 1

    def _inbound(self, item: dict[str, Any]) -> InboundMessage:
        raw_from = str(item.get("from") or "")
        body = str(item.get("body") or "")
        received = str(item.get("received_at") or "")
        try:
            sender = normalize_number(raw_from, self.default_region)
        except SmsValidationError:
            sender = raw_from
        return InboundMessage(
            provider=self.provider,
            message_id=str(item.get("message_id") or "") or derive_message_id(raw_from, received, body),
            from_number=sender,
            to_number=None,
            text=body,
            received_at=parse_timestamp(received),
            raw=item,
        )

    def check_credentials(self) -> None:
        self.client.request("GET", RESPONSES, params={"page": 1})

    # --- mapping ----------------------------------------------------------------------------------

    def _fan_out(self, numbers: list[str], send: Any, result: SendResult) -> SendResult:
        if not numbers:
            return result
        return send_batches(result, list(chunked(numbers, self.batch_size)), send, max_workers=self.max_workers)

    @staticmethod
    def _au_country_code(country_code: str | int | None) -> str | None:
        if country_code in (None, ""):
            return None
        code = str(country_code).lstrip("+")
        if code != "61":
            raise SmsValidationError(
                f"Cellcast's SMS and MMS endpoints accept country code 61 only, not {country_code!r}"
            )
        return code

    def _australian_only(self, numbers: list[str], result: SendResult) -> list[str]:
        keep = []
        for number in numbers:
            if number.startswith(_AU):
                keep.append(number)
            else:
                result.add_rejected(
                    number, "unsupported_destination", "Cellcast sends SMS and MMS to Australian (+61) numbers only"
                )
        return keep

    @staticmethod
    def _index(batch: Sequence[str]) -> dict[str, str]:
        """Every form Cellcast may write a sent number in (``400000001``, ``61…``, ``04…``) -> E.164."""
        index = {}
        for number in batch:
            index[number] = index[number[1:]] = number
            if number.startswith(_AU):
                index[number[3:]] = index["0" + number[3:]] = number
        return index

    def _match(self, contact: Any, index: dict[str, str]) -> str | None:
        cleaned = _CONTACT_JUNK.sub("", str(contact or ""))
        if cleaned in index:
            return index[cleaned]
        try:
            number = normalize_number(cleaned, self.default_region)
        except SmsValidationError:
            return None
        return number if number in index else None

    def _check_status(self, body: Any, endpoint: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            return {}
        if body.get("status") is False:
            raise SmsRejectedError(
                str(body.get("message") or "Cellcast refused the request"),
                provider=self.provider,
                endpoint=f"POST {endpoint}",
                body_excerpt=json.dumps(body.get("error"))[:200] if body.get("error") else None,
            )
        return body

    def _parse_queue_answer(self, batch: Sequence[str], body: Any, attempts: int, endpoint: str) -> SendResult:
        """Map the gateway/MMS answer: ``queueResponse``, ``invalidContacts``, ``unsubscribeContacts``."""
        data = self._check_status(body, endpoint).get("data")
        data = data if isinstance(data, dict) else {}
        result = SendResult(self.provider, requests=attempts)
        wanted = self._index(batch)
        done: set[str] = set()
        for item in data.get("queueResponse") or []:
            number = self._match(item.get("Contact"), wanted)
            if number and number not in done:
                done.add(number)
                result.accepted.append({"to": number, "message_id": item.get("MessageId") or None})
        for item in data.get("invalidContacts") or []:
            raw = item.get("Contact")
            number = self._match(raw, wanted) or _CONTACT_JUNK.sub("", str(raw or ""))
            done.add(number)
            code = str(item.get("ErrorType") or "number_not_valid")
            result.add_rejected(number, code, str(item.get("Error") or "Number is not valid"))
        for raw in data.get("unsubscribeContacts") or []:
            number = self._match(raw, wanted) or str(raw)
            done.add(number)
            result.unsubscribed.append(number)
        self._settle_unlisted(batch, done, result, listed="queueResponse" in data)
        return result

    def _parse_chat_answer(self, batch: Sequence[str], body: Any, attempts: int) -> SendResult:
        """Map the chat answer, whose ``data`` lists ``{"number", "message"}`` per number sent."""
        data = self._check_status(body, CHAT).get("data")
        result = SendResult(self.provider, requests=attempts)
        wanted = self._index(batch)
        done: set[str] = set()
        for item in data if isinstance(data, list) else []:
            number = self._match(item.get("number") if isinstance(item, dict) else None, wanted)
            if number and number not in done:
                done.add(number)
                result.accepted.append({"to": number, "message_id": None})
        self._settle_unlisted(batch, done, result, listed=isinstance(data, list) and bool(data))
        return result

    def _settle_unlisted(self, batch: Sequence[str], done: set[str], result: SendResult, *, listed: bool) -> None:
        """Numbers the answer did not mention: accepted when Cellcast lists nothing per number,
        otherwise unknown (never resent, since they may have gone out)."""
        for number in batch:
            if number in done:
                continue
            if listed:
                result.add_rejected(
                    number, "delivery_unknown", "Cellcast's answer did not list this number; it may have been sent"
                )
            else:
                result.accepted.append({"to": number, "message_id": None})
