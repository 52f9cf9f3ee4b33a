"""Timestamps from providers and users: parse to aware UTC datetimes.

Providers write times as ISO-8601 with ``Z``, an offset, or fractional seconds of any length;
``parse_timestamp`` accepts all of them (pendulum handles what ``datetime.fromisoformat`` cannot on
Python 3.10) and treats a time without an offset as UTC, which is what the providers document.
"""

from __future__ import annotations

from datetime import datetime, timezone


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def parse_timestamp(value: str | datetime) -> datetime:
    """Parse a provider or user timestamp into an aware UTC datetime; raise ``ValueError`` if unreadable."""
    if isinstance(value, datetime):
        return as_utc(value)
    text = str(value).strip()
    try:
        return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        import pendulum

        parsed = pendulum.parse(text, tz="UTC")
        if not isinstance(parsed, datetime):
            raise ValueError(f"{value!r} is not a date and time") from None
        return as_utc(parsed)


def timestamp_or_none(value: object) -> datetime | None:
    """A provider's time as aware UTC: ISO-8601 text, or epoch seconds or milliseconds; None if unreadable."""
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value / 1000 if value > 10**11 else value
        try:
            return datetime.fromtimestamp(seconds, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    try:
        return parse_timestamp(str(value))
    except (ValueError, OverflowError):
        return None
