from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airflow_provider_sms.core.errors import SmsValidationError
from airflow_provider_sms.core.validation import (
    MMS_MAX_BYTES,
    load_mms_media,
    resolve_send_time,
    validate_gif_url,
    validate_message,
    validate_sender,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 100
JPG = b"\xff\xd8\xff\xe0" + b"\0" * 100


@pytest.mark.parametrize("text", ["", "   ", None])
def test_empty_message_is_refused(text: str | None) -> None:
    with pytest.raises(SmsValidationError, match="empty"):
        validate_message(text)


def test_message_over_the_part_limit_is_refused() -> None:
    assert validate_message("a" * 153 * 3, max_segments=3).segments == 3
    with pytest.raises(SmsValidationError, match="4 SMS parts; the limit is 3"):
        validate_message("a" * (153 * 3 + 1), max_segments=3)


@pytest.mark.parametrize("sender", ["MyCompany", "My-Co 1", "12345678901", "+61400000001", "1234567890123456"])
def test_valid_senders(sender: str) -> None:
    assert validate_sender(sender) == sender


@pytest.mark.parametrize(
    ("sender", "why"),
    [
        ("My_Company", "characters"),
        ("Acme!", "characters"),
        ("TwelveChars1", "at most 11"),
        ("12345678901234567", "at most 16"),
    ],
)
def test_invalid_senders(sender: str, why: str) -> None:
    with pytest.raises(SmsValidationError, match=why):
        validate_sender(sender)


def test_blank_sender_means_provider_default() -> None:
    assert validate_sender("") is None
    assert validate_sender(None) is None


NOW = datetime(2030, 1, 1, 0, 0, tzinfo=timezone.utc)


def test_send_time_accepts_aware_datetime_iso_and_timedelta() -> None:
    assert resolve_send_time(
        datetime(2030, 1, 1, 10, tzinfo=timezone(timedelta(hours=10))), now=NOW - timedelta(1)
    ) == (datetime(2030, 1, 1, 0, tzinfo=timezone.utc))
    assert resolve_send_time("2030-01-01T09:00:00+10:00", now=NOW - timedelta(1)) == datetime(
        2029, 12, 31, 23, tzinfo=timezone.utc
    )
    assert resolve_send_time("2030-01-02T00:00:00Z", now=NOW) == datetime(2030, 1, 2, tzinfo=timezone.utc)
    assert resolve_send_time(timedelta(hours=2), now=NOW) == NOW + timedelta(hours=2)
    assert resolve_send_time(None) is None


@pytest.mark.parametrize(
    ("when", "why"),
    [
        (datetime(2030, 6, 1, 9), "no time zone"),
        ("2030-06-01T09:00:00", "no time zone"),
        (datetime(2029, 6, 1, tzinfo=timezone.utc), "in the past"),
        (timedelta(seconds=-1), "in the past"),
        ("next tuesday", "not ISO-8601"),
    ],
)
def test_send_time_refuses_naive_past_and_garbage(when: object, why: str) -> None:
    with pytest.raises(SmsValidationError, match=why):
        resolve_send_time(when, now=NOW)  # type: ignore[arg-type]


def test_mms_media_from_path_and_bytes(tmp_path: Path) -> None:
    path = tmp_path / "promo.png"
    path.write_bytes(PNG)
    assert load_mms_media(path) == ("promo.png", PNG, "image/png")
    assert load_mms_media(JPG) == ("media.jpg", JPG, "image/jpeg")


def test_mms_media_rules(tmp_path: Path) -> None:
    big = tmp_path / "big.jpg"
    big.write_bytes(JPG + b"\0" * MMS_MAX_BYTES)
    with pytest.raises(SmsValidationError, match="at most 230 KB"):
        load_mms_media(big)
    gif = tmp_path / "cat.gif"
    gif.write_bytes(b"GIF89a....")
    with pytest.raises(SmsValidationError, match="gif_url"):
        load_mms_media(gif)
    with pytest.raises(SmsValidationError, match="gif_url"):
        load_mms_media(b"GIF89a....")
    bmp = tmp_path / "x.bmp"
    bmp.write_bytes(b"BM..")
    with pytest.raises(SmsValidationError, match=r"\.jpg, \.jpeg or \.png"):
        load_mms_media(bmp)
    with pytest.raises(SmsValidationError, match="does not exist"):
        load_mms_media(tmp_path / "missing.png")
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"not an image")
    with pytest.raises(SmsValidationError, match="not a JPEG or PNG"):
        load_mms_media(fake)


def test_gif_url_rules() -> None:
    assert validate_gif_url("https://example.com/cat.gif?x=1") == "https://example.com/cat.gif?x=1"
    with pytest.raises(SmsValidationError):
        validate_gif_url("ftp://example.com/cat.gif")
    with pytest.raises(SmsValidationError):
        validate_gif_url("https://example.com/cat.png")


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x07", "\x7f"])
def test_control_characters_are_refused(char: str) -> None:
    with pytest.raises(SmsValidationError, match="control character"):
        validate_message(f"Hello{char}world")


def test_line_breaks_tabs_and_form_feed_are_allowed() -> None:
    assert validate_message("a\nb\r\nc\td\fe").segments == 1


def test_a_schedule_absurdly_far_ahead_is_refused() -> None:
    for when in ("9999-12-31T23:59:59+00:00", "9999-12-31T23:59:59-05:00", timedelta(days=3650)):
        with pytest.raises(SmsValidationError, match="year ahead"):
            resolve_send_time(when)
    assert resolve_send_time(timedelta(days=300)) is not None
