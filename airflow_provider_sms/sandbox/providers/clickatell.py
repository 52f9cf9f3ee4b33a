"""Clickatell as the sandbox serves it: ``POST /messages`` in JSON or XML, up to 200 recipients, and the
HTTP API's ``/messages/http/send``.

Answers follow the provider docs: ``202`` with one ``messages`` entry per recipient (``apiMessageId``,
``accepted``, ``to`` and the error fields), in the format of the request, and the raw API key as the
``Authorization`` header (a ``Bearer`` prefix is refused, as Clickatell does).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from airflow_provider_sms.core.encoding import count_segments
from airflow_provider_sms.core.errors import SmsValidationError
from airflow_provider_sms.core.phone import normalize_number
from airflow_provider_sms.sandbox.delivery import CLICKATELL_CODES, parse_stamp
from airflow_provider_sms.sandbox.providers.common import SANDBOX_NUMBER, json_or_none, parse_time, token_ok
from airflow_provider_sms.sandbox.store import Store, stamp


def _clickatell_error(status: int, code: int, error: str, description: str, xml: bool) -> Response:
    if xml:
        body = (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<SendMessagesResponse>'
            f"<ErrorCode>{code}</ErrorCode><Error>{error}</Error><ErrorDescription>{description}</ErrorDescription>"
            "</SendMessagesResponse>"
        )
        return Response(body, status_code=status, media_type="application/xml")
    return JSONResponse(
        {"messages": [], "errorCode": code, "error": error, "errorDescription": description}, status_code=status
    )


def _epoch_ms(moment: datetime | None = None) -> int:
    return int((moment or datetime.now(timezone.utc)).timestamp() * 1000)


def inbound_webhook(row: dict[str, Any]) -> dict[str, Any]:
    """A reply as Clickatell's reply (MO) callback sends it."""
    received = parse_stamp(row["ts"])
    reply = {
        "channel": "sms",
        "messageId": row["message_id"],
        "relatedMessageId": "",
        "relatedClientMessageId": "",
        "from": row["phone"].lstrip("+"),
        "to": SANDBOX_NUMBER,
        "timestamp": _epoch_ms(received),
        "content": row["text"],
        "charset": "UTF-8",
    }
    return {"integrationId": "sandbox", "integrationName": "SMS sandbox", "event": {"moText": [reply]}}


def status_webhook(row: dict[str, Any], status: str) -> dict[str, Any] | None:
    """A status change as Clickatell's status callback sends it (every change, as Clickatell does)."""
    code, name, description = CLICKATELL_CODES[status]
    return {
        "integrationName": "SMS sandbox",
        "messageId": row["message_id"],
        "requestId": row["message_id"],
        "clientMessageId": "",
        "to": row["phone"].lstrip("+"),
        "from": row["sender"] or SANDBOX_NUMBER,
        "statusCode": code,
        "status": name,
        "statusDescription": description,
        "timestamp": _epoch_ms(),
    }


_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")


class Clickatell:
    """``POST /messages`` in JSON or XML."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def messages(self, request: Request) -> Response:
        """``POST /messages`` (the REST API): JSON or XML in, the format ``Accept`` asks for out (else the
        request's format)."""
        sent_xml = "xml" in request.headers.get("content-type", "")
        accept = request.headers.get("accept", "")
        xml = "xml" in accept if ("xml" in accept or "json" in accept) else sent_xml
        key = request.headers.get("authorization", "").strip()
        if not key or key.lower().startswith("bearer ") or not token_ok(self.store, key):
            return _clickatell_error(
                401, 1, "Invalid or missing Auth token", "Send the API key as the Authorization header", xml
            )
        raw = await request.body()
        fields = self._read_xml(raw) if sent_xml else json_or_none(raw)
        if not isinstance(fields, dict):
            return _clickatell_error(400, 2, "Invalid request", "The body could not be read", xml)
        return self._send(fields, xml, "/messages")

    async def http_send(self, request: Request) -> Response:
        """``GET`` (or ``POST``) ``/messages/http/send?apiKey=...&to=...&content=...``: the HTTP API that
        simple clients (apprise, the ``clickatell-platform`` library's ``Http``) use. Answers in JSON."""
        params = dict(request.query_params)
        if request.method == "POST" and "form" in request.headers.get("content-type", ""):
            params.update({k: str(v) for k, v in (await request.form()).items()})
        if not token_ok(self.store, params.get("apiKey", "")):
            return _clickatell_error(401, 1, "Invalid or missing Auth token", "Give your API key as apiKey", False)
        to = [n for n in params.get("to", "").split(",") if n.strip()]
        fields = {"to": to, "content": params.get("content"), "from": params.get("from")}
        return self._send(fields, False, "/messages/http/send")

    def _send(self, fields: dict[str, Any], xml: bool, endpoint: str) -> Response:
        to = fields.get("to")
        if isinstance(to, str):
            to = [to]
        if not isinstance(to, list) or not to:
            return _clickatell_error(400, 105, "Invalid destination address", "No recipients given", xml)
        if len(to) > 200:
            return _clickatell_error(400, 128, "Number of recipients exceeds 200", "Send at most 200 per call", xml)
        content = str(fields.get("content") or "")
        if not content:
            return _clickatell_error(400, 101, "Invalid or missing parameter", "content is required", xml)
        binary = str(fields.get("binary", "false")).lower()
        header = str(fields.get("userDataHeader") or "")
        if binary not in ("true", "false"):
            return _clickatell_error(400, 101, "Invalid or missing parameter", "binary must be true or false", xml)
        for name, value in (("content", content if binary == "true" else ""), ("userDataHeader", header)):
            if value and not _HEX.fullmatch(value):
                text = f"{name} must be hexadecimal" + (" when binary is true" if name == "content" else "")
                return _clickatell_error(400, 101, "Invalid or missing parameter", text, xml)
        when = None
        if fields.get("scheduledDeliveryTime"):
            moment = parse_time(str(fields["scheduledDeliveryTime"]))
            if moment is None:
                return _clickatell_error(
                    400,
                    101,
                    "Invalid or missing parameter",
                    "scheduledDeliveryTime must look like 2017-02-27T14:30:00+0200",
                    xml,
                )
            when = stamp(moment) if moment > datetime.now(timezone.utc) else None
        info = count_segments(content)
        entries = []
        for number in to:
            digits = str(number).strip()
            try:
                e164 = normalize_number(digits if digits.startswith("+") else "+" + digits)
            except SmsValidationError:
                entries.append(
                    {
                        "apiMessageId": "",
                        "accepted": False,
                        "to": digits,
                        "errorCode": 105,
                        "error": "Invalid destination address",
                        "errorDescription": "Invalid destination address",
                    }
                )
                continue
            if not self.store.spend(info.segments):
                entries.append(
                    {
                        "apiMessageId": "",
                        "accepted": False,
                        "to": digits,
                        "errorCode": 301,
                        "error": "No credit left",
                        "errorDescription": "Insufficient credit",
                    }
                )
                continue
            row = self.store.add_message(
                direction="out",
                provider="clickatell",
                endpoint=endpoint,
                phone=e164,
                sender=fields.get("from"),
                text=content,
                status="scheduled" if when else "delivered",
                scheduled_for=when,
            )
            entries.append(
                {
                    "apiMessageId": row["message_id"],
                    "accepted": True,
                    "to": e164.lstrip("+"),
                    "errorCode": None,
                    "error": None,
                    "errorDescription": None,
                }
            )
        if xml:
            return Response(self._write_xml(entries), status_code=202, media_type="application/xml")
        return JSONResponse(
            {"messages": entries, "errorCode": None, "error": None, "errorDescription": None}, status_code=202
        )

    @staticmethod
    def _read_xml(raw: bytes) -> dict[str, Any] | None:
        if b"<!DOCTYPE" in raw.upper():
            return None
        try:
            root = ET.fromstring(raw)  # noqa: S314 - no DTD allowed (checked above)
        except ET.ParseError:
            return None
        names = {
            "Content": "content",
            "From": "from",
            "ScheduledDeliveryTime": "scheduledDeliveryTime",
            "ClientMessageId": "clientMessageId",
            "ValidityPeriod": "validityPeriod",
            "Charset": "charset",
            "Binary": "binary",
            "UserDataHeader": "userDataHeader",
        }
        fields: dict[str, Any] = {key: root.findtext(tag) for tag, key in names.items() if root.find(tag) is not None}
        fields["to"] = [node.text or "" for node in root.findall("To")]
        return fields

    @staticmethod
    def _write_xml(entries: list[dict[str, Any]]) -> bytes:
        root = ET.Element("SendMessagesResponse")
        messages = ET.SubElement(root, "Messages")
        for entry in entries:
            node = ET.SubElement(messages, "Message")
            ET.SubElement(node, "ApiMessageId").text = entry["apiMessageId"]
            ET.SubElement(node, "Accepted").text = "true" if entry["accepted"] else "false"
            ET.SubElement(node, "To").text = entry["to"]
            if entry["errorCode"] is not None:
                ET.SubElement(node, "ErrorCode").text = str(entry["errorCode"])
                ET.SubElement(node, "Error").text = entry["error"]
                ET.SubElement(node, "ErrorDescription").text = entry["errorDescription"]
        return b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + ET.tostring(root, encoding="utf-8")
