"""What the sandbox's fake providers share: token checks and reading bodies and times."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request

from airflow_provider_sms.sandbox.store import Store

PAGE_SIZE = 50
SANDBOX_NUMBER = "61400000000"  # the number the sandbox account sends from and receives on


def json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def parse_time(text: str) -> datetime | None:
    """A schedule time in one of the forms the providers document, as aware UTC; None if unreadable."""
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


def token_ok(store: Store, token: str) -> bool:
    return bool(token) and (store.settings.tokens is None or token in store.settings.tokens)


def bearer_ok(store: Store, request: Request) -> bool:
    """The ``Authorization: Bearer <token>`` form Cellcast and Cloudware document, with an accepted token."""
    header = request.headers.get("authorization", "")
    return header.startswith("Bearer ") and token_ok(store, header[7:].strip())
