"""Checks run before any request: message text, sender IDs, scheduled times and MMS media.

Every check raises ``SmsValidationError`` with the offending value named and what would be accepted,
so bad input fails the task before anything is sent (and before anything is paid for).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow_provider_sms.core.encoding import SegmentInfo, count_segments
from airflow_provider_sms.core.errors import SmsValidationError

# What a send's ``send_at`` may be: an aware datetime, an ISO-8601 string with an offset, a timedelta
# from now, or None for now (``resolve_send_time`` reads it).
SendAt = datetime | str | timedelta | None
DEFAULT_MAX_SEGMENTS = 10
# Our own guards where the providers document none: an MMS text's length, and how far ahead a send may
# be scheduled (a year: beyond that a date is almost always a typo, such as 9999-12-31).
MMS_MAX_CHARS = 5000
MAX_SCHEDULE_AHEAD = timedelta(days=366)
# C0 control characters other than tab, line feed, form feed (GSM-7's page break) and carriage return:
# a NUL or an ESC in a text would corrupt it on the way (ESC is GSM-7's own escape code).
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_SENDER_CHARS = re.compile(r"^[A-Za-z0-9 \-]+$")
_NUMERIC_SENDER = re.compile(r"^\+?[0-9]+$")

MMS_MAX_BYTES = 230 * 1024
_IMAGE_MAGIC = {
    "png": b"\x89PNG\r\n\x1a\n",
    "jpg": b"\xff\xd8\xff",
}


def validate_text(text: str | None, *, max_chars: int | None = None) -> str:
    """Refuse an empty text, control characters (NUL, ESC...) and, with ``max_chars``, a longer text."""
    if text is None or not str(text).strip():
        raise SmsValidationError("the message is empty; give the text to send")
    value = str(text)
    bad = _CONTROL_CHARS.search(value)
    if bad:
        raise SmsValidationError(
            f"the message holds the control character {bad.group()!r} at position {bad.start()}; "
            "remove it (only tab, line breaks and form feed are allowed)"
        )
    if max_chars is not None and len(value) > max_chars:
        raise SmsValidationError(f"the message is {len(value)} characters; at most {max_chars} are allowed")
    return value


def validate_message(text: str | None, *, max_segments: int = DEFAULT_MAX_SEGMENTS) -> SegmentInfo:
    """Refuse an empty text, control characters, or one longer than ``max_segments`` parts; return its
    segment count."""
    info = count_segments(validate_text(text))
    if info.segments > max_segments:
        raise SmsValidationError(
            f"the message is {info.characters} characters ({info.encoding}), {info.segments} SMS parts; "
            f"the limit is {max_segments} parts. Shorten it"
            + (" or avoid characters outside GSM-7 (emoji, curly quotes)" if info.encoding == "UCS-2" else "")
        )
    return info


def validate_sender(sender: str | None) -> str | None:
    """Check a sender ID: A-Z a-z 0-9, space and dash; at most 11 characters, or 16 digits if numeric.

    A leading ``+`` is allowed on a numeric sender (a phone number). Blank means the provider's default.
    """
    if sender is None or not str(sender).strip():
        return None
    value = str(sender).strip()
    if _NUMERIC_SENDER.match(value):
        digits = value.lstrip("+")
        if len(digits) > 16:
            raise SmsValidationError(f"numeric sender ID {value!r} has {len(digits)} digits; at most 16 are allowed")
        return value
    if not _SENDER_CHARS.match(value):
        raise SmsValidationError(f"sender ID {value!r} has characters other than A-Z, a-z, 0-9, space and dash")
    if len(value) > 11:
        raise SmsValidationError(f"alphanumeric sender ID {value!r} is {len(value)} characters; at most 11 are allowed")
    return value


def resolve_send_time(when: SendAt, *, now: datetime | None = None) -> datetime | None:
    """Turn a schedule time into an aware UTC datetime, refusing naive and past times.

    :param when: an aware datetime, an ISO-8601 string with an offset, or a ``timedelta`` from now.
    """
    if when is None or when == "":
        return None
    now = now or datetime.now(timezone.utc)
    too_far = SmsValidationError(
        f"schedule time {when!s} is too far ahead; a send can be scheduled at most a year ahead"
    )
    if isinstance(when, timedelta):
        if when > MAX_SCHEDULE_AHEAD:
            raise too_far
        moment = now + when
    elif isinstance(when, datetime):
        moment = when
    elif isinstance(when, str):
        try:
            moment = datetime.fromisoformat(when.strip().replace("Z", "+00:00"))
        except ValueError:
            raise SmsValidationError(
                f"schedule time {when!r} is not ISO-8601 (like 2030-01-31T09:00:00+10:00)"
            ) from None
    else:
        raise SmsValidationError(
            f"schedule time must be a datetime, ISO string or timedelta, not {type(when).__name__}"
        )
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise SmsValidationError(
            f"schedule time {when!s} has no time zone; give an aware datetime or an offset like +10:00"
        )
    try:
        moment = moment.astimezone(timezone.utc)
    except OverflowError:
        raise too_far from None
    if moment <= now:
        raise SmsValidationError(f"schedule time {moment.isoformat()} is in the past (now is {now.isoformat()})")
    if moment - now > MAX_SCHEDULE_AHEAD:
        raise SmsValidationError(
            f"schedule time {moment.isoformat()} is more than {MAX_SCHEDULE_AHEAD.days} days ahead; "
            "a send can be scheduled at most a year ahead"
        )
    return moment


def load_mms_media(media: str | Path | bytes, filename: str | None = None) -> tuple[str, bytes, str]:
    """Read and check an MMS image: jpg, jpeg or png, at most 230 KB.

    :return: ``(filename, content, content_type)`` ready for a multipart upload.
    """
    if isinstance(media, (bytes, bytearray)):
        content = bytes(media)
        name = filename
    else:
        path = Path(media)
        if not path.is_file():
            raise SmsValidationError(f"MMS media file {str(path)!r} does not exist")
        suffix = path.suffix.lower().lstrip(".")
        if suffix == "gif":
            raise SmsValidationError("GIFs cannot be uploaded as MMS media; pass a public URL as gif_url")
        if suffix not in ("jpg", "jpeg", "png"):
            raise SmsValidationError(f"MMS media {path.name!r} must be a .jpg, .jpeg or .png file")
        size = path.stat().st_size
        if size > MMS_MAX_BYTES:
            raise SmsValidationError(f"MMS media {path.name!r} is {size // 1024} KB; at most 230 KB is allowed")
        content = path.read_bytes()
        name = path.name
    if len(content) > MMS_MAX_BYTES:
        raise SmsValidationError(f"MMS media is {len(content) // 1024} KB; at most 230 KB is allowed")
    if content.startswith(_IMAGE_MAGIC["png"]):
        kind = "png"
    elif content.startswith(_IMAGE_MAGIC["jpg"]):
        kind = "jpg"
    elif content.startswith((b"GIF87a", b"GIF89a")):
        raise SmsValidationError("GIFs cannot be uploaded as MMS media; pass a public URL as gif_url")
    else:
        raise SmsValidationError("MMS media is not a JPEG or PNG image")
    content_type = "image/png" if kind == "png" else "image/jpeg"
    return name or f"media.{kind}", content, content_type


def validate_gif_url(url: str | None) -> str | None:
    """Check an MMS GIF reference: an http(s) URL ending in .gif."""
    if url is None or not str(url).strip():
        return None
    value = str(url).strip()
    if not re.match(r"^https?://", value, re.IGNORECASE):
        raise SmsValidationError(f"gif_url {value!r} must be an http(s) URL")
    if not value.lower().split("?", 1)[0].endswith(".gif"):
        raise SmsValidationError(f"gif_url {value!r} must point to a .gif file")
    return value


def list_extra(
    raw: Any,
    *,
    conn_id: str,
    name: str,
    example: str,
    items_are: str,
    separators: str = ",",
    containers: tuple[type, ...] = (list, tuple),
) -> list[str] | None:
    """A connection extra that lists things (a list, a JSON list, or ``"A, B"`` text) as stripped strings.

    None when unset. ``example`` shows both written forms in the error (``["AU", "NZ"] or AU, NZ``);
    ``separators`` are the characters that split plain text.

    :raises SmsValidationError: naming ``name`` when the JSON is broken or the value is not a list.
    """
    if raw is None or raw == "" or raw == []:
        return None
    items: Iterable[Any]
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("["):
            try:
                items = json.loads(text)
            except ValueError:
                raise SmsValidationError(
                    f"connection {conn_id!r}: {name} is not a valid JSON list; write it as {example}"
                ) from None
        else:
            for separator in separators[1:]:
                text = text.replace(separator, separators[0])
            items = text.split(separators[0])
    else:
        items = raw
    if not isinstance(items, containers):
        raise SmsValidationError(
            f"connection {conn_id!r}: {name} must be a list of {items_are}, not {type(items).__name__}"
        )
    return [str(item).strip() for item in items if str(item).strip()]
