"""The providers' documented answers and URLs, built once for every test that needs them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

CELLCAST = "https://api.cellcast.com"
CELLCAST_GATEWAY = f"{CELLCAST}/api/v1/gateway"
CELLCAST_CHAT = f"{CELLCAST}/api/v1/chat"
CELLCAST_MMS = f"{CELLCAST}/api/v1/gatewaymms"
CELLCAST_RESPONSES = f"{CELLCAST}/api/v1/apiClient/getResponses"
CLICKATELL_MESSAGES = "https://platform.clickatell.com/messages"
CLOUDWARE = "https://api.cloudware.chat"
CLOUDWARE_SEND = f"{CLOUDWARE}/v1/sms/send"
CLOUDWARE_QUEUE = f"{CLOUDWARE}/v1/sms/queue"
CLOUDWARE_MESSAGES = f"{CLOUDWARE}/v1/sms/messages"

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64

CLOUDWARE_OK = {"data": {"id": "12345", "name": "Example Resource"}, "status": "success"}


def cellcast_envelope(
    status: bool = True, message: str = "Request is being processed", data: Any = None
) -> dict[str, Any]:
    """Cellcast's JSON envelope (Send MMS / Send Chat pages)."""
    return {
        "app_type": "web",
        "app_version": "1.0",
        "invalid_token": 0,
        "status": status,
        "message": message,
        "message_type": "toast",
        "data": data if data is not None else {},
        "error": {},
    }


def cellcast_queued(*contacts: str, invalid: tuple[str, ...] = (), unsub: tuple[str, ...] = ()) -> dict[str, Any]:
    """A gateway/MMS answer: ``contacts`` queued (national digits), ``invalid`` and ``unsub`` refused."""
    return cellcast_envelope(
        data={
            "queueResponse": [
                {"Contact": c, "MessageId": f"id-{c}", "Result": "Message added to queue."} for c in contacts
            ],
            "message": "success register all valid contacts to queue",
            "invalidContacts": [
                {"Contact": f' "{c}"', "Error": "Number is not valid", "ErrorType": "number_not_valid"} for c in invalid
            ],
            "unsubscribeContacts": list(unsub),
            "totalValidContact": len(contacts),
            "totalInvalidContact": len(invalid),
            "totalUnsubscribeContact": len(unsub),
        }
    )


def cellcast_responses(*items: dict[str, str]) -> dict[str, Any]:
    """A ``getResponses`` page."""
    return {
        "meta": {"code": 200, "status": "SUCCESS"},
        "message": f"You have {len(items)} response(s)",
        "data": {"items": list(items)},
    }


def clickatell_answer(*numbers: str, rejected: dict[str, tuple[int, str, str]] | None = None) -> dict[str, Any]:
    """A ``202`` answer: ``numbers`` accepted, ``rejected`` = {number: (code, error, description)}."""
    messages: list[dict[str, Any]] = [
        {
            "apiMessageId": f"api-{n}",
            "accepted": True,
            "to": n,
            "errorCode": None,
            "error": None,
            "errorDescription": None,
        }
        for n in numbers
    ]
    for n, (code, error, description) in (rejected or {}).items():
        messages.append(
            {
                "apiMessageId": "",
                "accepted": False,
                "to": n,
                "errorCode": code,
                "error": error,
                "errorDescription": description,
            }
        )
    return {"messages": messages, "errorCode": None, "error": None, "errorDescription": None}


def cloudware_item(
    text: str,
    created: str | datetime,
    mid: str = "",
    *,
    sender: str = "61400000001",
    kind: str = "message_received",
    to: str = "61400000000",
) -> dict[str, str]:
    """One entry of Cloudware's ``GET /v1/sms/messages`` listing."""
    stamp = created.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(created, datetime) else created
    return {
        "type": kind,
        "from": sender,
        "to": to,
        "message": text,
        "message_id": mid,
        "created_at": stamp,
        "sent_at": stamp,
    }


def in_days(days: int = 30, *, tz: timezone = timezone.utc, **replace: int) -> datetime:
    """An aware time ``days`` from now (within the one-year scheduling limit), with fields replaced."""
    return (datetime.now(tz) + timedelta(days=days)).replace(**replace)
