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
from collections.abc import Collection, Hashable, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

from airflow_provider_sms.core.answers import require_success
from airflow_provider_sms.core.errors import SmsInvalidNumberError, SmsRejectedError, SmsValidationError
from airflow_provider_sms.core.listing import Page, read_listing
from airflow_provider_sms.core.phone import SentNumbers, region_for_country_code
from airflow_provider_sms.core.pipeline import Call, Outgoing, Reply
from airflow_provider_sms.core.results import DeliveryReport, InboundMessage, SendResult, SentCheck
from airflow_provider_sms.core.timestamps import as_utc, parse_timestamp, timestamp_or_none
from airflow_provider_sms.core.validation import MMS_MAX_CHARS, load_mms_media, validate_gif_url
from airflow_provider_sms.hooks.base import SendAt, SmsHook

GATEWAY = "/api/v1/gateway"
CHAT = "/api/v1/chat"
MMS = "/api/v1/gatewaymms"
RESPONSES = "/api/v1/apiClient/getResponses"
REPORT = "/api/v2/report/message"
CONFIRM_PAGES = 20  # pages of the sent list read to settle recipients in doubt (2,000 messages)
CONFIRM_PAGE_SIZE = 100
# Cellcast's delivery statuses (webhook and report; "delievered" is spelled so in its docs) -> ours.
_DELIVERY = {
    "queued": "queued",
    "scheduled": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "delievered": "delivered",
    "received": "delivered",
    "expired": "expired",
    "dead": "failed",
    "failed": "failed",
    "rejected": "rejected",
    "blocked": "rejected",
    "canceled": "rejected",
    "cancelled": "rejected",
}
_AU = "+61"


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
    hook_name = "Cellcast SMS"
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
        to: str | Iterable[Any],
        message: str,
        *,
        sender: str | None = None,
        send_at: SendAt = None,
        country_code: str | int | None = None,
        dry_run: bool = False,
    ) -> SendResult:
        """Send a plain SMS with ``POST /api/v1/gateway``, 1,000 numbers a call.

        :param to: numbers (list, or comma-separated string); Australian (+61) numbers only.
        :param message: the text; new lines are sent as ``\\r\\n``.
        :param sender: sender ID; blank uses the connection's ``sender`` or Cellcast's shared number.
        :param send_at: an aware datetime, ISO-8601 string or ``timedelta`` from now; sent as UTC
            (``scheduleAt``). Naive and past times are refused.
        :param country_code: Cellcast accepts only 61.
        :param dry_run: send nothing; return what the send would do.
        """
        code = self._au_country_code(country_code)
        return self.deliver(
            to,
            to_crlf(message or ""),
            sender=sender,
            send_at=send_at,
            destination=self._australian_only,
            build=partial(self._gateway_call, code),
            parse=self._parse_queue_answer,
            dry_run=dry_run,
        )

    def send_chat(
        self,
        to: str | Iterable[Any],
        message: str,
        *,
        sender: str | None = None,
        sms_template_id: str | None = None,
        rms_template_id: str | None = None,
        country_code: str | int | None = None,
        dry_run: bool = False,
    ) -> SendResult:
        """Send a chat message with ``POST /api/v1/chat``, 1,000 numbers a call.

        :param to: recipients; sent in ``+61400000000`` form.
        :param sms_template_id: Cellcast SMS template id (``smsTemplateId``).
        :param rms_template_id: Cellcast RMS template id (``rmsTemplateId``).
        :param country_code: ``countryCode``; defaults to the connection's (61).
        """
        code = str(country_code or self._extra("country_code") or self.default_country_code).lstrip("+")
        templates = {"smsTemplateId": sms_template_id, "rmsTemplateId": rms_template_id}
        return self.deliver(
            to,
            to_crlf(message or ""),
            sender=sender,
            region=region_for_country_code(code),
            build=partial(self._chat_call, code, {k: str(v) for k, v in templates.items() if v}),
            parse=self._parse_chat_answer,
            dry_run=dry_run,
        )

    def send_mms(
        self,
        to: str | Iterable[Any],
        message: str,
        *,
        media: str | Path | bytes | None = None,
        gif_url: str | None = None,
        sender: str | None = None,
        country_code: str | int | None = None,
        dry_run: bool = False,
    ) -> SendResult:
        """Send an MMS with ``POST /api/v1/gatewaymms`` (multipart), 1,000 numbers a call.

        :param to: numbers; Australian (+61) numbers only.
        :param message: the text, at most 5,000 characters (our guard: Cellcast documents no limit).
        :param media: a path or the bytes of a jpg/jpeg/png of at most 230 KB, checked before sending.
        :param gif_url: a public URL of a ``.gif`` (GIFs cannot be uploaded).
        """
        code = self._au_country_code(country_code)
        gif = validate_gif_url(gif_url)
        upload = load_mms_media(media) if media is not None else None
        if upload is None and gif is None:
            raise SmsValidationError("an MMS needs media (a jpg/png of at most 230 KB) or a gif_url")
        extra: list[tuple[str, Any]] = [("countryCode", (None, code))] if code else []
        if gif:
            extra.append(("gif", (None, gif)))
        if upload:
            extra.append(("media", upload))
        return self.deliver(
            to,
            to_crlf(message or ""),
            sender=sender,
            destination=self._australian_only,
            check_text=False,
            max_chars=MMS_MAX_CHARS,
            build=partial(self._mms_call, extra),
            parse=self._parse_queue_answer,
            dry_run=dry_run,
        )

    # --- payloads ---------------------------------------------------------------------------------

    @staticmethod
    def _gateway_call(country_code: str | None, batch: Sequence[str], out: Outgoing) -> Call:
        body: dict[str, Any] = {"message": out.message, "contacts": list(batch)}
        if out.sender:
            body["sender"] = out.sender
        if country_code:
            body["countryCode"] = country_code
        if out.send_at:
            body["scheduleAt"] = format_schedule(out.send_at)
        return Call("POST", GATEWAY, json=body)

    @staticmethod
    def _chat_call(country_code: str, templates: dict[str, str], batch: Sequence[str], out: Outgoing) -> Call:
        body: dict[str, Any] = {"message": out.message, "number": list(batch), "countryCode": country_code}
        if out.sender:
            body["sender"] = out.sender
        return Call("POST", CHAT, json={**body, **templates})

    @staticmethod
    def _mms_call(extra: list[tuple[str, Any]], batch: Sequence[str], out: Outgoing) -> Call:
        fields: list[tuple[str, Any]] = [("message", (None, out.message))]
        if out.sender:
            fields.append(("sender", (None, out.sender)))
        fields += [*extra, ("contacts", (None, json.dumps(list(batch))))]
        return Call("POST", MMS, files=fields)

    # --- inbound ----------------------------------------------------------------------------------

    def iter_messages(
        self, *, since: datetime | str | None = None, stop_at: float | None = None, known: Collection[str] = ()
    ) -> Iterator[InboundMessage]:
        """Yield replies from ``GET /api/v1/apiClient/getResponses?page=N``, newest first, down to ``since``.

        Paging is bounded as ``core.listing`` describes; a naive ``since`` is taken as UTC.

        :param stop_at: a ``time.monotonic()`` deadline for the whole poll.
        :param known: ids of messages at exactly ``since`` already read by an earlier poll.
        """

        def fetch(page: Hashable) -> Page:
            reply = self.client.request("GET", RESPONSES, params={"page": page})
            data = reply.body.get("data") if isinstance(reply.body, dict) else None
            items = data.get("items") if isinstance(data, dict) else None
            return Page(items if isinstance(items, list) else [], int(str(page)) + 1)

        cutoff = parse_timestamp(since) if since else None
        return read_listing(
            fetch, 1, self._read_item, since=cutoff, provider=self.provider, known=known, stop_at=stop_at
        )

    def _read_item(self, item: dict[str, Any]) -> tuple[datetime, InboundMessage]:
        item = self.scrubbed(item)
        received_at = parse_timestamp(str(item.get("received_at") or ""))
        message = self.inbound_message(
            item,
            message_id=item.get("message_id"),
            sender=item.get("from"),
            receiver=None,
            text=item.get("body"),
            received_at=received_at,
        )
        return received_at, message

    # --- delivery reports and webhooks ---------------------------------------------------------------

    def get_delivery_reports(self, message_ids: Iterable[str]) -> list[DeliveryReport]:
        """One ``GET /api/v2/report/message/{id}`` per message, paced under Cellcast's 15 calls a second.

        A message Cellcast does not know (4xx) is reported ``unknown``; an opt-out (``replyStop``) is
        ``unsubscribed``.
        """
        reports = []
        for message_id in dict.fromkeys(str(m) for m in message_ids if m):
            try:
                reply = self.client.request("GET", f"{REPORT}/{quote(message_id, safe='')}")
            except SmsRejectedError as err:
                reports.append(DeliveryReport(self.provider, message_id, None, "unknown", raw={"error": str(err)}))
                continue
            body = reply.body if isinstance(reply.body, dict) else {}
            data = body.get("data") if body.get("status") is True else None
            if isinstance(data, dict):
                reports.append(self._report(data, message_id))
            else:
                reports.append(DeliveryReport(self.provider, message_id, None, "unknown", raw=self.scrubbed(body)))
        return reports

    def confirm_sent(self, numbers: Sequence[str], message: str, *, since: datetime) -> SentCheck | None:
        """Read Cellcast's sent-message list (``GET /api/v2/report/message``, SMS sent through the API
        from ``since``'s date on), page by page up to ``CONFIRM_PAGES``: a record to the number with
        this very text, created at or after ``since``, is the message taken. When the list ended (a
        short or empty page) within the cap, a number without such a record was certainly not taken;
        otherwise it stays in doubt."""
        wanted = set(numbers)
        check = SentCheck()
        params = {
            "limit": CONFIRM_PAGE_SIZE,
            "campType": "sms",
            "requestFrom": "API",
            "fromDate": since.astimezone(timezone.utc).strftime("%Y-%m-%d"),
            "toDate": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        }
        ended = False
        for page in range(1, CONFIRM_PAGES + 1):
            reply = self.client.request("GET", REPORT, params={"page": page, **params})
            body = reply.body if isinstance(reply.body, dict) else {}
            data = body.get("data") if body.get("status") is True else None
            items = data.get("items") if isinstance(data, dict) else None
            if not isinstance(items, list):
                return check  # an answer we cannot read settles nothing
            for item in items:
                if not isinstance(item, dict) or item.get("message") != message:
                    continue
                number = self.number_or_none(item.get("receiver"))
                created = timestamp_or_none(item.get("createdAt"))
                if number in wanted and created is not None and created >= since:
                    check.found[number] = str(item.get("_id") or "") or None
            if len(items) < CONFIRM_PAGE_SIZE:
                ended = True
                break
        if ended:
            check.absent = wanted - set(check.found)
        return check

    def _report(self, record: dict[str, Any], message_id: str | None = None) -> DeliveryReport:
        record = self.scrubbed(record)
        word = str(record.get("status") or "")
        opted_out = str(record.get("replyStop")).lower() in ("true", "1")
        return DeliveryReport(
            provider=self.provider,
            message_id=str(record.get("_id") or message_id or ""),
            to=self.number_or_none(record.get("receiver")),
            status="unsubscribed" if opted_out else _DELIVERY.get(word.lower(), "unknown"),
            provider_status=word or None,
            at=timestamp_or_none(record.get("updatedAt")),
            raw=record,
        )

    def parse_webhook(self, payload: Any) -> tuple[list[InboundMessage], list[DeliveryReport]]:
        """Cellcast's Receive URL (``type: receive``, or the older ``from``/``body`` form) and Status URL
        (``type: send``) calls."""
        messages, reports = [], []
        for item in payload if isinstance(payload, list) else [payload]:
            if not isinstance(item, dict):
                continue
            kind = str(item.get("type") or "").lower()
            if kind == "receive":
                item = self.scrubbed(item)
                messages.append(
                    self.webhook_message(
                        item,
                        message_id=item.get("_id"),
                        sender=item.get("sender"),
                        receiver=item.get("receiver"),
                        text=item.get("message"),
                        received_at=item.get("received_at"),
                    )
                )
            elif "body" in item and "from" in item:
                try:
                    messages.append(self._read_item(item)[1])
                except (ValueError, OverflowError):  # no readable time: still recorded (flagged)
                    item = self.scrubbed(item)
                    messages.append(
                        self.webhook_message(
                            item,
                            message_id=item.get("message_id"),
                            sender=item.get("from"),
                            receiver=None,
                            text=item.get("body"),
                            received_at=item.get("received_at"),
                        )
                    )
            elif item.get("_id") and item.get("status"):
                reports.append(self._report(item))
        return messages, reports

    def check_credentials(self) -> None:
        self.client.request("GET", RESPONSES, params={"page": 1})

    # --- mapping ----------------------------------------------------------------------------------

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

    @staticmethod
    def _australian_only(number: str) -> str | None:
        """The destination rule of the SMS and MMS endpoints (chat takes any ``countryCode``)."""
        return None if number.startswith(_AU) else "Cellcast sends SMS and MMS to Australian (+61) numbers only"

    def _accepted_envelope(self, reply: Reply) -> dict[str, Any]:
        """The answer when it says ``status: true``; Cellcast's 200 with ``status: false`` is a refusal."""
        return require_success(reply.body, reply, provider=self.provider, succeeded=lambda b: b.get("status") is True)

    def _parse_queue_answer(self, batch: Sequence[str], reply: Reply) -> SendResult:
        """Map the gateway/MMS answer: ``queueResponse``, ``invalidContacts``, ``unsubscribeContacts``.

        With ``status: true`` and no ``queueResponse`` list at all, Cellcast took every number.
        """
        data = self._accepted_envelope(reply).get("data")
        data = data if isinstance(data, dict) else {}
        result = SendResult(self.provider)
        if not isinstance(data.get("queueResponse"), list):
            return self._all_accepted(batch)
        sent = SentNumbers(batch, self.default_region)
        for item in _dicts(data.get("queueResponse")):
            if number := sent.find(item.get("Contact")):
                result.add_accepted(number, item.get("MessageId"))
        for item in _dicts(data.get("invalidContacts")):
            if number := sent.find(item.get("Contact")):
                reason = str(item.get("Error") or "Number is not valid")
                result.add_rejected(number, SmsInvalidNumberError.code, reason, provider_code=item.get("ErrorType"))
        unsubscribed = data.get("unsubscribeContacts")
        result.unsubscribed += [n for n in map(sent.find, unsubscribed if isinstance(unsubscribed, list) else []) if n]
        return result

    def _parse_chat_answer(self, batch: Sequence[str], reply: Reply) -> SendResult:
        """Map the chat answer, whose ``data`` lists ``{"number", "message"}`` per number sent."""
        data = self._accepted_envelope(reply).get("data")
        if not _dicts(data):
            return self._all_accepted(batch)
        sent = SentNumbers(batch, self.default_region)
        result = SendResult(self.provider)
        for item in _dicts(data):
            if number := sent.find(item.get("number")):
                result.add_accepted(number)
        return result

    def _all_accepted(self, batch: Sequence[str]) -> SendResult:
        result = SendResult(self.provider)
        for number in batch:
            result.add_accepted(number)
        return result


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The dict items of a list from an answer; anything else reads as empty."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
