"""Cloudware as the sandbox serves it: send, queue (one recipient a call) and the messages listing.

Answers follow the provider docs: ``{"data": {...}, "status": "success"}`` for a send, and the listing
of sent and received messages newest first, paged by a ``next_page`` URL on the same host.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from airflow_provider_sms.core.encoding import count_segments
from airflow_provider_sms.core.errors import SmsValidationError
from airflow_provider_sms.core.phone import normalize_number
from airflow_provider_sms.sandbox.providers.common import PAGE_SIZE, SANDBOX_NUMBER, bearer_ok, json_or_none
from airflow_provider_sms.sandbox.store import Store


def _record(row: dict[str, Any]) -> dict[str, Any]:
    """A message as Cloudware lists it and posts it to a webhook."""
    created = row["ts"][:19] + "Z"
    phone = row["phone"].lstrip("+")
    received = row["direction"] == "in"
    return {
        "type": "message_received" if received else "message_sent",
        "from": phone if received else (row["sender"] or SANDBOX_NUMBER),
        "to": SANDBOX_NUMBER if received else phone,
        "message": row["text"],
        "message_id": row["message_id"],
        "created_at": created,
        "sent_at": created,
    }


def inbound_webhook(row: dict[str, Any]) -> dict[str, Any]:
    return _record(row)


def status_webhook(row: dict[str, Any], status: str) -> dict[str, Any] | None:
    """Cloudware reports a message once, as ``message_sent``, and nothing after."""
    return _record(row) if status == "sent" else None


class Cloudware:
    """``POST /v1/sms/send``, ``POST /v1/sms/queue`` and ``GET /v1/sms/messages`` (paged by ``next_page``)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _refuse(self, request: Request) -> Response | None:
        if not bearer_ok(self.store, request):
            return JSONResponse({"status": "error", "message": "Unauthenticated."}, status_code=401)
        return None

    async def send(self, request: Request) -> Response:
        """``POST /v1/sms/send``: the message goes out now."""
        return await self._take(request, "/v1/sms/send", "sent")

    async def queue(self, request: Request) -> Response:
        """``POST /v1/sms/queue``: Cloudware keeps the message to send later."""
        return await self._take(request, "/v1/sms/queue", "queued")

    async def _take(self, request: Request, endpoint: str, status: str) -> Response:
        if (refused := self._refuse(request)) is not None:
            return refused
        body = json_or_none(await request.body())
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
        row = self.store.add_message(
            direction="out",
            provider="cloudware",
            endpoint=endpoint,
            phone=e164,
            sender=body.get("from"),
            text=message,
            status=status,
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
        data = [_record(row) for row in rows]
        next_page = None
        if more:
            last = rows[-1]
            cursor = quote(f"{last['ts']}_{last['seq']}")
            next_page = f"{str(request.base_url).rstrip('/')}/v1/sms/messages?token={cursor}"
        return JSONResponse({"query": "", "data": data, "next_page": next_page})
