"""Cellcast as the sandbox serves it: gateway (SMS), chat, MMS and the replies listing.

Answers follow the provider docs: the JSON envelope with ``status``, ``queueResponse``,
``invalidContacts`` and ``unsubscribeContacts``, the documented 400/401/422 bodies, and the account's
limit of 15 calls a second (429 ``OVER_LIMIT``).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from airflow_provider_sms.core.encoding import count_segments
from airflow_provider_sms.core.errors import SmsValidationError
from airflow_provider_sms.core.phone import normalize_number, region_for_country_code
from airflow_provider_sms.core.validation import validate_sender
from airflow_provider_sms.sandbox.delivery import CELLCAST_WORDS
from airflow_provider_sms.sandbox.providers.common import (
    PAGE_SIZE,
    SANDBOX_NUMBER,
    bearer_ok,
    json_or_none,
    parse_time,
)
from airflow_provider_sms.sandbox.store import Store, stamp

_CELLCAST_CONTACT = re.compile(r"^(?:\+?61|0)?(4\d{8})$")


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


def inbound_webhook(row: dict[str, Any]) -> dict[str, Any]:
    """A reply as Cellcast's Receive URL gets it."""
    return {
        "_id": row["message_id"],
        "status": "received",
        "type": "receive",
        "message": row["text"],
        "sender": row["phone"],
        "receiver": f"+{SANDBOX_NUMBER}",
    }


def status_webhook(row: dict[str, Any], status: str) -> dict[str, Any] | None:
    """A delivery report as Cellcast's Status URL gets it: final statuses only, as documented."""
    if status not in ("delivered", "failed", "expired", "rejected", "unsubscribed"):
        return None
    sender = row["sender"] if row["sender"] not in (None, "", "#SharedNum#") else "cellcast"
    word = CELLCAST_WORDS.get(status, status)
    return {"_id": row["message_id"], "status": word, "type": "send", "sender": sender, "receiver": row["phone"]}


class Cellcast:
    """``/api/v1/gateway``, ``/api/v1/chat``, ``/api/v1/gatewaymms``, ``/api/v1/apiClient/getResponses`` and
    ``/api/v2/report/message/{id}``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _refuse(self, request: Request) -> Response | None:
        if not bearer_ok(self.store, request):
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
        rows = self.store.add_messages(
            direction="out",
            provider="cellcast",
            endpoint=endpoint,
            phones=[f"+61{local}" for local in valid],
            sender=sender or "#SharedNum#",
            text=message,
            status="scheduled" if when else "queued",
            scheduled_for=when,
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
        body = json_or_none(await request.body())
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
            moment = parse_time(str(body["scheduleAt"]))
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
        contacts = json_or_none(str(form.get("contacts") or "").encode())
        answer = self._queue(
            "/api/v1/gatewaymms", message, contacts if isinstance(contacts, list) else [], form.get("sender"), None
        )
        if media is not None and not isinstance(media, str) and answer.status_code == 200:
            queued = json_or_none(bytes(answer.body))["data"]["queueResponse"]
            kind = "image/png" if media.filename and media.filename.lower().endswith(".png") else "image/jpeg"
            self.store.keep_media([q["MessageId"] for q in queued], kind, content)
        return answer

    async def chat(self, request: Request) -> Response:
        body, error = await self._json_send(request)
        if error is not None:
            return error
        numbers = body.get("number")
        if not isinstance(numbers, list) or not numbers or len(numbers) > 1000:
            return _cellcast_api_error(400, "number must be a JSON array of 1 to 1000 numbers", "Invalid number.")
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
        self.store.add_messages(
            direction="out",
            provider="cellcast",
            endpoint="/api/v1/chat",
            phones=sent,
            sender=body.get("sender"),
            text=body["message"],
            status="sent",
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

    async def report(self, request: Request) -> Response:
        """``GET /api/v2/report/message/{id}``: one message's delivery, as it stands now."""
        if (refused := self._refuse(request)) is not None:
            return refused
        row = self.store.find("cellcast", request.path_params["message_id"])
        if row is None or row["direction"] != "out":
            return _cellcast_api_error(404, "Message not found", "Message not found.")
        return JSONResponse(_cellcast_envelope(True, "Message detail", self._record(row)))

    async def report_list(self, request: Request) -> Response:
        """``GET /api/v2/report/message?page=&limit=&campType=&fromDate=&toDate=``: sent messages, newest
        first, in ``data.items`` (the records of the one-message report)."""
        if (refused := self._refuse(request)) is not None:
            return refused
        query = request.query_params
        try:
            page, limit = max(int(query.get("page") or 1), 1), min(max(int(query.get("limit") or 10), 1), 100)
        except ValueError:
            return _cellcast_api_error(400, "page and limit must be numbers", "Bad request.")
        mms = query.get("campType") == "mms"
        rows = [
            row
            for row in reversed(self.store.all(provider="cellcast"))
            if row["direction"] == "out"
            and ("mms" in str(row.get("endpoint") or "")) == mms
            and (not query.get("fromDate") or row["ts"][:10] >= query["fromDate"])
            and (not query.get("toDate") or row["ts"][:10] <= query["toDate"])
        ]
        items = [self._record(row) for row in rows[(page - 1) * limit : page * limit]]
        return JSONResponse(_cellcast_envelope(True, "Message list", {"items": items, "total": len(rows)}))

    def _record(self, row: dict[str, Any]) -> dict[str, Any]:
        status = self.store.settings.delivery.status(row)
        info = count_segments(row["text"])
        data = {
            "_id": row["message_id"],
            "status": CELLCAST_WORDS.get(status, status),
            "replyStop": status == "unsubscribed",
            "message": row["text"],
            "sender": row["sender"],
            "receiver": row["phone"][3:] if row["phone"].startswith("+61") else row["phone"].lstrip("+"),
            "smsDetail": {"messagelength": len(row["text"]), "smscount": info.segments, "deductibleCredit": 1},
            "creditAmount": info.segments,
            "createdAt": row["ts"][:23] + "Z",
            "updatedAt": stamp()[:23] + "Z",
            "send_time": (row["scheduled_for"] or row["ts"])[:23] + "Z",
            "scheduleAt": row["scheduled_for"][:23] + "Z" if row["scheduled_for"] else None,
        }
        return data
