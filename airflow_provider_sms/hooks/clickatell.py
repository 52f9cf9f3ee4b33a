"""Clickatell: ``POST /messages`` in JSON or XML, up to 200 recipients a call, with scheduled delivery.

This module maps our send to Clickatell's JSON or XML body (recipients as international digits, the
API key as the raw ``Authorization`` header) and maps the per-recipient ``apiMessageId``/``accepted``
answer back to ``SendResult``: a recipient counts as accepted only when its entry says ``accepted`` with
an ``apiMessageId``. Under a send ledger each request carries its own ``clientMessageId`` (a UUID),
recorded with its claim, so recipients a lost answer leaves in doubt are named by the reference
Clickatell's status callbacks echo; Clickatell documents no way to look a message up (its Platform
API's status query is unconfirmed), so ``confirm_sent`` stays None and they are reported in doubt.
Everything else (validation, batching, retries) is the pipeline of ``SmsHook``.
API page: https://docs.clickatell.com/channels/sms-channels/sms-api-reference/#tag/SMS-API/operation/sendMessageREST_1
"""

from __future__ import annotations

import contextlib
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from airflow_provider_sms.core.answers import require_success
from airflow_provider_sms.core.errors import (
    SmsDeliveryUnknownError,
    SmsInsufficientCreditError,
    SmsInvalidNumberError,
    SmsRejectedError,
    SmsValidationError,
)
from airflow_provider_sms.core.phone import SentNumbers
from airflow_provider_sms.core.pipeline import Call, Outgoing, Reply, current_journal
from airflow_provider_sms.core.results import DeliveryReport, InboundMessage, SendResult, SentCheck
from airflow_provider_sms.core.safeguards import validity_minutes
from airflow_provider_sms.core.timestamps import as_utc, timestamp_or_none
from airflow_provider_sms.hooks.base import SendAt, SmsHook

MESSAGES = "/messages"
FORMATS = ("json", "xml")
_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})+$")

# Our name -> (JSON field, XML element), in the documented order.
_OPTIONAL_FIELDS = (
    ("sender", "from", "From"),
    ("binary", "binary", "Binary"),
    ("client_message_id", "clientMessageId", "ClientMessageId"),
    ("send_at", "scheduledDeliveryTime", "ScheduledDeliveryTime"),
    ("user_data_header", "userDataHeader", "UserDataHeader"),
    ("validity_period", "validityPeriod", "ValidityPeriod"),
    ("charset", "charset", "Charset"),
)
# Clickatell's per-message error codes that mean more than "rejected".
_CODE_MEANING = {"105": SmsInvalidNumberError.code, "301": SmsInsufficientCreditError.code}


def format_delivery_time(moment: datetime) -> str:
    """The documented form, ``2017-02-27T14:30:00+0200``, written in UTC (``+0000``)."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%S+0000")


def build_xml(content: str, to: Sequence[str], options: dict[str, Any]) -> bytes:
    """A ``SendMessageRequest`` document with one ``<To>`` per recipient."""
    root = ET.Element("SendMessageRequest")
    ET.SubElement(root, "Content").text = content
    for number in to:
        ET.SubElement(root, "To").text = number
    for name, _, element in _OPTIONAL_FIELDS:
        if name in options:
            value = options[name]
            ET.SubElement(root, element).text = str(value).lower() if isinstance(value, bool) else str(value)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False)


def parse_xml_answer(text: str) -> dict[str, Any]:
    """A ``SendMessagesResponse`` in the shape of the JSON answer: ``messages`` and the top-level error."""
    if "<!DOCTYPE" in text.upper():
        # Clickatell's answers carry no DTD; refusing one rules out entity-expansion tricks.
        raise ET.ParseError("a DOCTYPE is not expected in Clickatell's answer")
    root = ET.fromstring(text.encode("utf-8"))  # noqa: S314 - no DTD allowed (checked above)
    out = []
    for node in root.iter("Message"):
        accepted = (node.findtext("Accepted") or "").strip().lower() == "true"
        out.append(
            {
                "apiMessageId": node.findtext("ApiMessageId"),
                "accepted": accepted,
                "to": node.findtext("To"),
                "errorCode": node.findtext("ErrorCode"),
                "error": node.findtext("Error"),
                "errorDescription": node.findtext("ErrorDescription"),
            }
        )
    top = {name: root.findtext(name[0].upper() + name[1:]) for name in ("errorCode", "error", "errorDescription")}
    return {"messages": out, **top}


def delivery_status(code: str, word: str = "") -> str:
    """Clickatell's status code (1 unknown, 2-3 queued or scheduled, 4 sent to the supplier, 5-6
    delivered or read, 20-29 errors with 21 "stopped by user", 100 routing error) as our status."""
    if "expir" in word.lower():
        return "expired"
    number = int(code) if code.isdigit() else -1
    if number in (2, 3):
        return "queued"
    if number == 4:
        return "sent"
    if number in (5, 6):
        return "delivered"
    if number == 21:
        return "unsubscribed"
    if 20 <= number <= 29 or number == 100:
        return "failed"
    return "unknown"


def _number_or_text(value: Any) -> Any:
    """A GET callback's ``timestamp`` arrives as text: epoch milliseconds stay numbers."""
    return int(value) if isinstance(value, str) and value.isdigit() else value


def _entries(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    return [e for e in messages if isinstance(e, dict)] if isinstance(messages, list) else []


class ClickatellHook(SmsHook):
    """Send SMS through Clickatell's ``/messages`` API, immediately or scheduled.

    :param clickatell_conn_id: connection of type ``clickatell``; password = API key (sent as the raw
        ``Authorization`` header), host = optional base URL, extras ``sender``, ``request_format``
        (``json`` or ``xml``), ``country_code`` and ``timeout``.
    :param batch_size: recipients per call, at most 200 (the documented limit).
    """

    conn_name_attr = "clickatell_conn_id"
    default_conn_name = "clickatell_default"
    conn_type = "clickatell"
    hook_name = "Clickatell SMS"
    provider = "clickatell"
    default_host = "https://platform.clickatell.com"
    batch_limit = 200
    default_workers = 4

    def __init__(self, clickatell_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(clickatell_conn_id, **kwargs)
        self.clickatell_conn_id = clickatell_conn_id

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": self.token}

    def send_sms(
        self,
        to: str | Iterable[Any],
        message: str,
        *,
        sender: str | None = None,
        send_at: SendAt = None,
        dry_run: bool = False,
    ) -> SendResult:
        """Send a plain SMS, now or at ``send_at`` (``send_message`` with its other defaults)."""
        return self.send_message(to, message, sender=sender, send_at=send_at, dry_run=dry_run)

    def send_message(
        self,
        to: str | Iterable[Any],
        message: str,
        *,
        sender: str | None = None,
        send_at: SendAt = None,
        validity_period: int | None = None,
        client_message_id: str | None = None,
        binary: bool = False,
        user_data_header: str | None = None,
        charset: str | None = None,
        request_format: str | None = None,
        dry_run: bool = False,
    ) -> SendResult:
        """Send ``message`` to ``to`` with ``POST /messages``, 200 recipients a call.

        :param to: recipients; sent as international digits without ``+`` (``61400000000``).
        :param message: the text (``content``); hex-encoded bytes when ``binary``.
        :param sender: ``from``: a sender ID or number registered with Clickatell.
        :param send_at: an aware datetime, ISO-8601 string or ``timedelta`` from now; naive and past
            times are refused. Sent as ``scheduledDeliveryTime``, ``2030-01-31T09:00:00+0000``.
        :param validity_period: minutes Clickatell keeps trying to deliver (``validityPeriod``); the
            hook's ``validity`` timedelta sets it for every send.
        :param client_message_id: your reference for the message (``clientMessageId``), on every request
            of the send. Without one, a send under a send ledger (an operator's, the notifier's) gives
            each request a UUID of its own, recorded in the ledger with the request's recipients.
        :param binary: send ``message`` as hex-encoded binary data.
        :param user_data_header: hex UDH for binary messages (``userDataHeader``).
        :param charset: the charset of ``message`` (``charset``), e.g. ``UTF-8``.
        :param request_format: ``json`` or ``xml``; defaults to the connection's, else ``json``.
        :param dry_run: send nothing; return what the send would do.
        """
        fmt = str(request_format or self._extra("request_format") or "json").lower()
        if fmt not in FORMATS:
            raise SmsValidationError(f"request_format must be 'json' or 'xml', not {fmt!r}")
        options: dict[str, Any] = {}
        if self.policy.validity is not None:
            if validity_period is not None:
                raise SmsValidationError("give validity (a timedelta) or validity_period (minutes), not both")
            validity_period = validity_minutes(self.policy.validity)
        if validity_period is not None:
            if isinstance(validity_period, bool) or not isinstance(validity_period, int) or validity_period < 1:
                raise SmsValidationError(f"validity_period must be a whole number of minutes, not {validity_period!r}")
            options["validity_period"] = validity_period
        if client_message_id:
            options["client_message_id"] = str(client_message_id)
        elif not dry_run and current_journal(self.conn_id) is not None:
            options["client_message_id"] = None  # one per request, made as each is built
        if binary:
            if not _HEX.match(message or ""):
                raise SmsValidationError("binary content must be hex-encoded bytes (e.g. '48656C6C6F')")
            options["binary"] = True
        if user_data_header:
            if not _HEX.match(user_data_header):
                raise SmsValidationError(f"user_data_header {user_data_header!r} must be hex-encoded bytes")
            options["user_data_header"] = user_data_header
        if charset:
            options["charset"] = str(charset)
        xml = fmt == "xml"
        return self.deliver(
            to,
            message,
            sender=sender,
            send_at=send_at,
            check_text=not binary,
            build=partial(self._xml_call if xml else self._json_call, options),
            parse=self._parse_xml if xml else self._parse_json,
            dry_run=dry_run,
        )

    # --- payloads ---------------------------------------------------------------------------------

    @staticmethod
    def _fields(options: dict[str, Any], out: Outgoing) -> dict[str, Any]:
        """Every optional field this request carries, by our name, in the documented order (a
        ``client_message_id`` of None is a new UUID, one per request)."""
        values = dict(options)
        if "client_message_id" in values and values["client_message_id"] is None:
            values["client_message_id"] = str(uuid.uuid4())
        if out.sender:
            values["sender"] = out.sender.lstrip("+")
        if out.send_at:
            values["send_at"] = format_delivery_time(out.send_at)
        return {name: values[name] for name, _, _ in _OPTIONAL_FIELDS if name in values}

    def _json_call(self, options: dict[str, Any], batch: Sequence[str], out: Outgoing) -> Call:
        body: dict[str, Any] = {"content": out.message, "to": [n.lstrip("+") for n in batch]}
        json_names = {name: field for name, field, _ in _OPTIONAL_FIELDS}
        fields = self._fields(options, out)
        body.update({json_names[name]: value for name, value in fields.items()})
        return Call("POST", MESSAGES, json=body, ref=fields.get("client_message_id"))

    def _xml_call(self, options: dict[str, Any], batch: Sequence[str], out: Outgoing) -> Call:
        fields = self._fields(options, out)
        document = build_xml(out.message, [n.lstrip("+") for n in batch], fields)
        headers = {"Content-Type": "application/xml", "Accept": "application/xml"}
        ref = fields.get("client_message_id")
        return Call("POST", MESSAGES, data=document, headers=headers, expect="text", ref=ref)

    # --- answers ----------------------------------------------------------------------------------

    def _parse_json(self, batch: Sequence[str], reply: Reply) -> SendResult:
        return self._map_messages(batch, reply, reply.body)

    def _parse_xml(self, batch: Sequence[str], reply: Reply) -> SendResult:
        try:
            body = parse_xml_answer(reply.text)
        except ET.ParseError:
            raise SmsDeliveryUnknownError(
                "answered 2xx with XML that could not be read; the messages may have been sent",
                provider=self.provider,
                endpoint=reply.endpoint,
                status=reply.status,
            ) from None
        return self._map_messages(batch, reply, body)

    def _map_messages(self, batch: Sequence[str], reply: Reply, body: Any) -> SendResult:
        """One entry per recipient: ``accepted: true`` with an ``apiMessageId`` is the only acceptance.

        A 2xx without any entry is Clickatell's top-level error if it gave one, else delivery unknown.
        """
        body = require_success(body, reply, provider=self.provider, succeeded=lambda b: bool(_entries(b)))
        result = SendResult(self.provider)
        sent = SentNumbers(batch, self.default_region)
        for entry in _entries(body):
            number = sent.find(entry.get("to"))
            if number is None:
                continue
            if entry.get("accepted") is True and entry.get("apiMessageId"):
                result.add_accepted(number, entry["apiMessageId"])
            else:
                code = entry.get("errorCode")
                reason = entry.get("errorDescription") or entry.get("error") or "not accepted by Clickatell"
                meaning = _CODE_MEANING.get(str(code), SmsRejectedError.code)
                result.add_rejected(number, meaning, str(reason), provider_code=code)
        return result

    # --- webhooks (Clickatell has no API to read delivery reports) ------------------------------------

    def parse_webhook(self, payload: Any) -> tuple[list[InboundMessage], list[DeliveryReport]]:
        """Clickatell's reply callbacks (``event.moText[]``) and status callbacks (``messageId`` and
        ``statusCode``, posted as JSON or sent as GET query parameters)."""
        messages: list[InboundMessage] = []
        reports: list[DeliveryReport] = []
        for item in payload if isinstance(payload, list) else [payload]:
            if not isinstance(item, dict):
                continue
            item = self.scrubbed(item)
            event = item.get("event")
            replies = event.get("moText") if isinstance(event, dict) else None
            for reply in replies if isinstance(replies, list) else []:
                if isinstance(reply, dict):
                    messages.append(self._reply(reply))
            if item.get("messageId") and item.get("statusCode") not in (None, ""):
                reports.append(self._status(item))
        return messages, reports

    def _reply(self, reply: dict[str, Any]) -> InboundMessage:
        return self.webhook_message(
            reply,
            message_id=reply.get("messageId"),
            sender=reply.get("from"),
            receiver=reply.get("to"),
            text=reply.get("content"),
            received_at=reply.get("timestamp"),
        )

    def _status(self, item: dict[str, Any]) -> DeliveryReport:
        code = str(item.get("statusCode")).strip()
        word = str(item.get("status") or "")
        return DeliveryReport(
            provider=self.provider,
            message_id=str(item["messageId"]),
            to=self.number_or_none(item.get("to")),
            status=delivery_status(code, word),
            provider_status=f"{code} {word}".strip(),
            at=timestamp_or_none(_number_or_text(item.get("timestamp"))),
            raw=item,
        )

    def confirm_sent(self, numbers: Sequence[str], message: str, *, since: datetime) -> SentCheck | None:
        """None: Clickatell documents no way to ask whether it took a message (its Platform API has no
        confirmed status query; status comes only as callbacks), so recipients in doubt stay reported
        in doubt, named by their request's ``clientMessageId`` in the log, and are not resent."""
        return None

    def check_credentials(self) -> None:
        """Post a request with no recipient: nothing can be sent, but a bad key answers 401/403."""
        # A rejection means the key was accepted and only the empty request itself was refused.
        with contextlib.suppress(SmsRejectedError):
            self.client.request("POST", MESSAGES, json_body={"content": "", "to": []})
