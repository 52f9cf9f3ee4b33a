"""The three providers' endpoints as the sandbox serves them, following the pages in provider-docs.

Each handler checks the provider's documented auth header (answering 401 as the provider does),
validates the request as the docs describe (batch limits, number forms, sender IDs, media, schedule
format), stores what it accepts and answers with the documented response shape.
"""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from airflow_provider_sms.core.encoding import count_segments
from airflow_provider_sms.core.errors import SmsValidationError
from airflow_provider_sms.core.phone import normalize_number
from airflow_provider_sms.core.validation import validate_sender
from airflow_provider_sms.sandbox.store import Store, new_id, stamp

PAGE_SIZE = 50
SANDBOX_NUMBER = "61400000000"  # the number the sandbox account sends from and receives on
_CELLCAST_CONTACT = re.compile(r"^(?:\+?61|0)?(4\d{8})$")


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _parse_time(text: str) -> datetime | None:
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
        try:
            return datetime.strptime(text, fmt).astimezone(timezone.utc)
        except ValueError:
            pass
    return None


def _token_ok(store: Store, token: str) -> bool:
    return bool(token) and (store.settings.tokens is None or token in store.settings.tokens)


def _bearer_ok(store: Store, request: Request) -> bool:
    """The ``Authorization: Bearer <token>`` form Cellcast and Cloudware document, with an accepted token."""
    header = request.headers.get("authorization", "")
    return header.startswith("Bearer ") and _token_ok(store, header[7:].strip())


# --- Cellcast ---------------------------------------------------------------------------------------


def _cellcast_envelope(status: bool, message: str, data: Any, error: Any = None) -> dict[str, Any]:
    return {
        "app_type": "web",
        "app_version": "1.0",
        "maintainence": 0,
        "new_version": 0,
        "force_update": 0,
        "invalid_token": 0,
        "refresh_token": "",
        "show_message": 0,
        "is_enc": False,
        "status": status,
        "message": message,
        "message_type": "toast",
        "data": data,
        "error": error or {},
    }


def _cellcast_api_error(status: int, message: str, stack: str) -> JSONResponse:
    return JSONResponse({"code": status, "message": message, "stack": f"APIError: {stack}"}, status_code=status)


class Cellcast:
    """``/api/v1/gateway``, ``/api/v1/chat``, ``/api/v1/gatewaymms`` and ``/api/v1/apiClient/getResponses``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _refuse(self, request: Request) -> Response | None:
        if not _bearer_ok(self.store, request):
            return _cellcast_api_error(401, "Token expired", "Token expired ....")
        limit = self.store.settings.cellcast_rate_limit
        if limit is None:
            return None
        calls, now = self.store.recent_calls, time.monotonic()
        while calls and now - calls[0] >= 1.0:
            calls.popleft()
        if len(calls) >= limit:
            return JSONResponse(
                {"code": 429, "message": "Too many requests", "error": "OVER_LIMIT"},
                status_code=429,
                headers={"Retry-After": "1"},
            )
        calls.append(now)
        return None

    def _sender_error(self, sender: Any) -> Response | None:
        if sender in (None, "", "#SharedNum#"):
            return None
        try:
            validate_sender(str(sender))
        except SmsValidationError as err:
            return JSONResponse(_cellcast_envelope(False, err.message, {}, {"sender": "invalid"}), status_code=400)
        registered = self.store.settings.registered_senders
        if registered is not None and str(sender) not in registered:
            body = _cellcast_envelope(False, "Your sender id is not registered.", {}, {"sender": "not_registered"})
            return JSONResponse(body, status_code=400)
        return None

    def _queue(self, endpoint: str, message: str, contacts: list[Any], sender: Any, when: str | None) -> Response:
        if not contacts:
            return _cellcast_api_error(
                400,
                "Contacts must either start with 61 or +61 and be exactly 11 digits long (e.g., 614xxxxxxxx or "
                "+614xxxxxxxx), or be 9 digits without the area code (e.g., 4xxxxxxxx)",
                "Contacts are required.",
            )
        if len(contacts) > 1000:
            return _cellcast_api_error(400, "You can pass at most 1000 contacts in one API call", "Too many contacts.")
        info = count_segments(message)
        valid, invalid, unsubscribed = [], [], []
        for raw in contacts:
            found = _CELLCAST_CONTACT.match(str(raw).strip())
            if not found:
                invalid.append(
                    {
                        "Contact": f" {json.dumps(str(raw))}",
                        "Error": "Number is not valid",
                        "ErrorType": "number_not_valid",
                    }
                )
            elif f"+61{found.group(1)}" in self.store.settings.unsubscribed:
                unsubscribed.append(found.group(1))
            else:
                valid.append(found.group(1))
        if not self.store.spend(info.segments * len(valid)):
            text = "Your balance is too low for this request, please recharge."
            return JSONResponse(_cellcast_envelope(False, text, {}, {"errorMessage": text}), status_code=422)
        rows = self.store.add(
            {
                "direction": "out",
                "provider": "cellcast",
                "endpoint": endpoint,
                "message_id": new_id("cellcast"),
                "phone": f"+61{local}",
                "sender": sender or "#SharedNum#",
                "text": message,
                "status": "scheduled" if when else "queued",
                "scheduled_for": when,
                "segments": info.segments,
                "encoding": info.encoding,
            }
            for local in valid
        )
        data = {
            "queueResponse": [
                {"Contact": row["phone"][3:], "MessageId": row["message_id"], "Result": "Message added to queue."}
                for row in rows
            ],
            "message": "success register all valid contacts to queue",
            "invalidContacts": invalid,
            "unsubscribeContacts": unsubscribed,
            "totalValidContact": len(valid),
            "totalInvalidContact": len(invalid),
            "totalUnsubscribeContact": len(unsubscribed),
        }
        return JSONResponse(_cellcast_envelope(True, "Request is being processed", data))

    async def _json_send(self, request: Request) -> tuple[dict[str, Any], Response | None]:
        """Auth, a JSON body with a message, and a valid sender: the checks every JSON send makes first."""
        if (refused := self._refuse(request)) is not None:
            return {}, refused
        body = _json_or_none(await request.body())
        if not isinstance(body, dict) or not str(body.get("message") or "").strip():
            return {}, _cellcast_api_error(400, "Message is required", "Message is required.")
        return body, self._sender_error(body.get("sender"))

    async def gateway(self, request: Request) -> Response:
        body, error = await self._json_send(request)
        if error is not None:
            return error
        if str(body.get("countryCode") or "61") != "61":
            return _cellcast_api_error(400, "Only country code 61 is allowed", "Invalid country code.")
        when = None
        if body.get("scheduleAt"):
            moment = _parse_time(str(body["scheduleAt"]))
            if moment is None:
                return _cellcast_api_error(400, "scheduleAt must be a UTC time", "Invalid scheduleAt.")
            when = stamp(moment)
        contacts = body.get("contacts")
        return self._queue(
            "/api/v1/gateway", body["message"], contacts if isinstance(contacts, list) else [], body.get("sender"), when
        )

    async def mms(self, request: Request) -> Response:
        if (refused := self._refuse(request)) is not None:
            return refused
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return _cellcast_api_error(400, "Send the request as multipart/form-data", "Invalid content type.")
        form = await request.form(max_part_size=2 * 1024 * 1024)
        message = str(form.get("message") or "")
        if not message.strip():
            return _cellcast_api_error(400, "Message is required", "Message is required.")
        if (bad := self._sender_error(form.get("sender"))) is not None:
            return bad
        media = form.get("media")
        if media is not None and not isinstance(media, str):
            name = (media.filename or "").lower()
            content = await media.read()
            if not name.endswith((".jpg", ".jpeg", ".png")) or len(content) > 230 * 1024:
                return _cellcast_api_error(
                    400, "Media must be a jpg, jpeg or png file of at most 230 KB", "Invalid media."
                )
        gif = str(form.get("gif") or "")
        if gif and not gif.lower().split("?")[0].endswith(".gif"):
            return _cellcast_api_error(400, "gif must be the URL of a .gif file", "Invalid gif.")
        contacts = _json_or_none(str(form.get("contacts") or "").encode())
        return self._queue(
            "/api/v1/gatewaymms", message, contacts if isinstance(contacts, list) else [], form.get("sender"), None
        )

    async def chat(self, request: Request) -> Response:
        body, error = await self._json_send(request)
        if error is not None:
            return error
        numbers = body.get("number")
        if not isinstance(numbers, list) or not numbers or len(numbers) > 1000:
            return _cellcast_api_error(400, "number must be a JSON array of 1 to 1000 numbers", "Invalid number.")
        from airflow_provider_sms.core.phone import region_for_country_code

        region = region_for_country_code(str(body.get("countryCode") or "61"))
        info = count_segments(body["message"])
        sent = []
        for raw in numbers:
            try:
                sent.append(normalize_number(str(raw), region))
            except SmsValidationError:
                continue
        if not self.store.spend(info.segments * len(sent)):
            text = "Your balance is too low for this request, please recharge."
            return JSONResponse(_cellcast_envelope(False, text, {}, {"errorMessage": text}), status_code=422)
        self.store.add(
            {
                "direction": "out",
                "provider": "cellcast",
                "endpoint": "/api/v1/chat",
                "message_id": new_id("cellcast"),
                "phone": number,
                "sender": body.get("sender"),
                "text": body["message"],
                "status": "sent",
                "segments": info.segments,
                "encoding": info.encoding,
            }
            for number in sent
        )
        data = [{"number": n.lstrip("+"), "message": body["message"]} for n in sent]
        return JSONResponse(_cellcast_envelope(True, "Chat message(s) sent successfully", data))

    async def responses(self, request: Request) -> Response:
        if (refused := self._refuse(request)) is not None:
            return refused
        try:
            page = max(int(request.query_params.get("page", "1")), 1)
        except ValueError:
            return _cellcast_api_error(400, "page must be a number", "Invalid page.")
        rows = self.store.page("cellcast", offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        items = [
            {
                "from": row["phone"][3:] if row["phone"].startswith("+61") else row["phone"].lstrip("+"),
                "body": row["text"],
                "received_at": row["ts"][:23] + "Z",
                "message_id": row["message_id"],
            }
            for row in rows
        ]
        return JSONResponse(
            {
                "meta": {"code": 200, "status": "SUCCESS"},
                "message": f"You have {len(items)} response(s)",
                "data": {"items": items},
            }
        )


# --- Clickatell -------------------------------------------------------------------------------------


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


class Clickatell:
    """``POST /messages`` in JSON or XML."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def messages(self, request: Request) -> Response:
        xml = "xml" in request.headers.get("content-type", "")
        key = request.headers.get("authorization", "").strip()
        if not key or key.lower().startswith("bearer ") or not _token_ok(self.store, key):
            return _clickatell_error(
                401, 1, "Invalid or missing Auth token", "Send the API key as the Authorization header", xml
            )
        raw = await request.body()
        fields = self._read_xml(raw) if xml else _json_or_none(raw)
        if not isinstance(fields, dict):
            return _clickatell_error(400, 2, "Invalid request", "The body could not be read", xml)
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
        when = None
        if fields.get("scheduledDeliveryTime"):
            moment = _parse_time(str(fields["scheduledDeliveryTime"]))
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
            (row,) = self.store.add(
                [
                    {
                        "direction": "out",
                        "provider": "clickatell",
                        "endpoint": "/messages",
                        "message_id": new_id("clickatell"),
                        "phone": e164,
                        "sender": fields.get("from"),
                        "text": content,
                        "status": "scheduled" if when else "delivered",
                        "scheduled_for": when,
                        "segments": info.segments,
                        "encoding": info.encoding,
                    }
                ]
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


# --- Cloudware --------------------------------------------------------------------------------------


class Cloudware:
    """``POST /v1/sms/send``, ``POST /v1/sms/queue`` and ``GET /v1/sms/messages`` (paged by ``next_page``)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _refuse(self, request: Request) -> Response | None:
        if not _bearer_ok(self.store, request):
            return JSONResponse({"status": "error", "message": "Unauthenticated."}, status_code=401)
        return None

    def _send(self, endpoint: str, status: str) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            if (refused := self._refuse(request)) is not None:
                return refused
            body = _json_or_none(await request.body())
            if not isinstance(body, dict):
                return JSONResponse({"status": "error", "message": "Send a JSON body."}, status_code=400)
            to, message = str(body.get("to") or ""), str(body.get("message") or "")
            if not message.strip():
                return JSONResponse({"status": "error", "message": "The message field is required."}, status_code=422)
            try:
                e164 = normalize_number("+" + to if to.isdigit() else to)
            except SmsValidationError:
                text = "The to field must be a phone number with its country code, e.g. 2348012345678."
                return JSONResponse({"status": "error", "message": text}, status_code=422)
            info = count_segments(message)
            if not self.store.spend(info.segments):
                return JSONResponse({"status": "error", "message": "Insufficient credit."}, status_code=402)
            (row,) = self.store.add(
                [
                    {
                        "direction": "out",
                        "provider": "cloudware",
                        "endpoint": endpoint,
                        "message_id": new_id("cloudware"),
                        "phone": e164,
                        "sender": body.get("from"),
                        "text": message,
                        "status": status,
                        "segments": info.segments,
                        "encoding": info.encoding,
                    }
                ]
            )
            created = row["ts"][:19] + "Z"
            return JSONResponse(
                {
                    "data": {
                        "id": row["message_id"],
                        "name": "SMS",
                        "description": f"SMS {status} to {to}",
                        "created_at": created,
                        "updated_at": created,
                    },
                    "status": "success",
                }
            )

        return handler

    async def messages(self, request: Request) -> Response:
        if (refused := self._refuse(request)) is not None:
            return refused
        before = None
        token = request.query_params.get("token")
        if token:
            ts, _, seq = unquote(token).rpartition("_")
            if not ts or not seq.isdigit():
                return JSONResponse({"status": "error", "message": "Invalid page token."}, status_code=400)
            before = (ts, int(seq))
        rows = self.store.page("cloudware", directions=("in", "out"), before=before, limit=PAGE_SIZE + 1)
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        data = []
        for row in rows:
            created = row["ts"][:19] + "Z"
            phone = row["phone"].lstrip("+")
            received = row["direction"] == "in"
            data.append(
                {
                    "type": "message_received" if received else "message_sent",
                    "from": phone if received else (row["sender"] or SANDBOX_NUMBER),
                    "to": SANDBOX_NUMBER if received else phone,
                    "message": row["text"],
                    "message_id": row["message_id"],
                    "created_at": created,
                    "sent_at": created,
                }
            )
        next_page = None
        if more:
            last = rows[-1]
            cursor = quote(f"{last['ts']}_{last['seq']}")
            next_page = f"{str(request.base_url).rstrip('/')}/v1/sms/messages?token={cursor}"
        return JSONResponse({"query": "", "data": data, "next_page": next_page})
