"""Clickatell: ``POST /messages`` in JSON or XML, up to 200 recipients a call, with scheduled delivery.

This module maps our send to Clickatell's JSON or XML body (recipients as international digits, the
API key as the raw ``Authorization`` header) and maps the per-recipient ``apiMessageId``/``accepted``
answer back to ``SendResult``. Validation, batching and retries come from ``core``.
API page: https://docs.clickatell.com/channels/sms-channels/sms-api-reference/#tag/SMS-API/operation/sendMessageREST_1
"""

from __future__ import annotations

import contextlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_sms.core.batching import chunked, send_batches
from airflow_provider_sms.core.errors import SmsDeliveryUnknownError, SmsRejectedError, SmsValidationError
from airflow_provider_sms.core.phone import normalize_number
from airflow_provider_sms.core.results import SendResult
from airflow_provider_sms.core.timestamps import as_utc
from airflow_provider_sms.core.validation import resolve_send_time
from airflow_provider_sms.hooks.base import SmsHook

MESSAGES = "/messages"
FORMATS = ("json", "xml")
_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})+$")

# Our argument -> (JSON field, XML element), in the documented order.
_OPTIONAL_FIELDS = (
    ("sender", "from", "From"),
    ("binary", "binary", "Binary"),
    ("client_message_id", "clientMessageId", "ClientMessageId"),
    ("scheduled_delivery_time", "scheduledDeliveryTime", "ScheduledDeliveryTime"),
    ("user_data_header", "userDataHeader", "UserDataHeader"),
    ("validity_period", "validityPeriod", "ValidityPeriod"),
    ("charset", "charset", "Charset"),
)


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


def parse_xml_messages(text: str) -> list[dict[str, Any]]:
    """The ``<Message>`` entries of a ``SendMessagesResponse`` as JSON-shaped dicts."""
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
    return out


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
    hook_name = "Clickatell"
    provider = "clickatell"
    default_host = "https://platform.clickatell.com"
    batch_limit = 200
    default_workers = 4

    def __init__(self, clickatell_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(clickatell_conn_id, **kwargs)
        self.clickatell_conn_id = clickatell_conn_id

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": self.token}

    def send_sms(self, to: str | Iterable[Any], message: str, *, sender: str | None = None) -> SendResult:
        """Send a plain SMS now (``send_message`` with its defaults)."""
        return self.send_message(to, message, sender=sender)

    def send_message(
        self,
        to: str | Iterable[Any],
        content: str,
        *,
        sender: str | None = None,
        scheduled_delivery_time: datetime | str | timedelta | None = None,
        validity_period: int | None = None,
        client_message_id: str | None = None,
        binary: bool = False,
        user_data_header: str | None = None,
        charset: str | None = None,
        request_format: str | None = None,
    ) -> SendResult:
        """Send ``content`` to ``to`` with ``POST /messages``, 200 recipients a call.

        :param to: recipients; sent as international digits without ``+`` (``61400000000``).
        :param sender: ``from``: a sender ID or number registered with Clickatell.
        :param scheduled_delivery_time: an aware datetime, ISO-8601 string or ``timedelta`` from now;
            naive and past times are refused. Sent as ``2030-01-31T09:00:00+0000``.
        :param validity_period: minutes Clickatell keeps trying to deliver (``validityPeriod``).
        :param client_message_id: your reference for the message (``clientMessageId``).
        :param binary: send ``content`` as hex-encoded binary data.
        :param user_data_header: hex UDH for binary messages (``userDataHeader``).
        :param charset: the charset of ``content`` (``charset``), e.g. ``UTF-8``.
        :param request_format: ``json`` or ``xml``; defaults to the connection's, else ``json``.
        """
        fmt = str(request_format or self._extra("request_format") or "json").lower()
        if fmt not in FORMATS:
            raise SmsValidationError(f"request_format must be 'json' or 'xml', not {fmt!r}")
        options: dict[str, Any] = {}
        when = resolve_send_time(scheduled_delivery_time)
        if when:
            options["scheduled_delivery_time"] = format_delivery_time(when)
        if validity_period is not None:
            if isinstance(validity_period, bool) or not isinstance(validity_period, int) or validity_period < 1:
                raise SmsValidationError(f"validity_period must be a whole number of minutes, not {validity_period!r}")
            options["validity_period"] = validity_period
        if client_message_id:
            options["client_message_id"] = str(client_message_id)
        if binary:
            if not _HEX.match(content or ""):
                raise SmsValidationError("binary content must be hex-encoded bytes (e.g. '48656C6C6F')")
            options["binary"] = True
        if user_data_header:
            if not _HEX.match(user_data_header):
                raise SmsValidationError(f"user_data_header {user_data_header!r} must be hex-encoded bytes")
            options["user_data_header"] = user_data_header
        if charset:
            options["charset"] = str(charset)
        numbers, result, chosen_sender, _ = self.prepare_send(to, content, sender, check_text=not binary)
        if chosen_sender:
            options["sender"] = chosen_sender.lstrip("+")

        def send(batch: Sequence[str]) -> SendResult:
            entries: Any
            digits = [n.lstrip("+") for n in batch]
            if fmt == "xml":
                reply = self.client.request(
                    "POST",
                    MESSAGES,
                    data=build_xml(content, digits, options),
                    headers={"Content-Type": "application/xml", "Accept": "application/xml"},
                    expect="text",
                )
                try:
                    entries = parse_xml_messages(reply.text)
                except ET.ParseError:
                    raise SmsDeliveryUnknownError(
                        "answered 2xx with XML that could not be read; the messages may have been sent",
                        provider=self.provider,
                        endpoint=reply.endpoint,
                        status=reply.status,
                    ) from None
            else:
                body = {"content": content, "to": digits}
                body.update({field: options[name] for name, field, _ in _OPTIONAL_FIELDS if name in options})
                reply = self.client.request("POST", MESSAGES, json_body=body)
                entries = reply.body.get("messages") if isinstance(reply.body, dict) else None
                if not isinstance(entries, list):
                    raise SmsDeliveryUnknownError(
                        "answered 2xx without a 'messages' list; the messages may have been sent",
                        provider=self.provider,
                        endpoint=reply.endpoint,
                        status=reply.status,
                    )
            return self._map_messages(batch, entries, reply.attempts)

        return send_batches(result, list(chunked(numbers, self.batch_size)), send, max_workers=self.max_workers)

    def _map_messages(self, batch: Sequence[str], entries: list[dict[str, Any]], attempts: int) -> SendResult:
        result = SendResult(self.provider, requests=attempts)
        by_digits = {n.lstrip("+"): n for n in batch}
        seen: set[str] = set()
        for entry in entries:
            raw_to = str(entry.get("to") or "")
            number = by_digits.get(raw_to.lstrip("+"))
            if number is None:
                try:
                    number = normalize_number(raw_to, self.default_region)
                except SmsValidationError:
                    number = raw_to
            seen.add(number)
            if entry.get("accepted") is True and entry.get("apiMessageId"):
                result.accepted.append({"to": number, "message_id": str(entry["apiMessageId"])})
            else:
                code = entry.get("errorCode")
                reason = entry.get("errorDescription") or entry.get("error") or "not accepted by Clickatell"
                result.add_rejected(number, f"clickatell_{code}" if code not in (None, "") else "rejected", str(reason))
        for number in batch:
            if number not in seen:
                result.add_rejected(
                    number, "delivery_unknown", "Clickatell's answer did not list this number; it may have been sent"
                )
        return result

    def check_credentials(self) -> None:
        """Post a request with no recipient: nothing can be sent, but a bad key answers 401/403."""
        # A rejection means the key was accepted and only the empty request itself was refused.
        with contextlib.suppress(SmsRejectedError):
            self.client.request("POST", MESSAGES, json_body={"content": "", "to": []})
