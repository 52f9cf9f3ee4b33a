"""Smart encoding: GSM-7 look-alikes replaced only when that makes the whole text GSM-7."""

from __future__ import annotations

import pytest

from airflow_provider_sms.core.encoding import LOOK_ALIKES, count_segments, smart_encode
from airflow_provider_sms.core.safeguards import SendPolicy


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("It’s ‘fine’", "It's 'fine'"),
        ("“Quoted” „low”", '"Quoted" "low"'),
        ("5–6, yes—no, a‑b, 3−2", "5-6, yes-no, a-b, 3-2"),
        ("Wait…", "Wait..."),
        ("10\u00a0am\u202fsharp\u2009now", "10 am sharp now"),
        ("zero\u200bwidth\ufeff soft\u00adhyphen", "zerowidth softhyphen"),
        ("plain text", "plain text"),
    ],
)
def test_look_alikes_are_replaced(given: str, sent: str) -> None:
    out = smart_encode(given)
    assert out.text == sent
    assert count_segments(out.text).encoding == "GSM-7"


def test_every_replacement_is_gsm7() -> None:
    for char, replacement in LOOK_ALIKES.items():
        assert count_segments(replacement or "a").encoding == "GSM-7", char


def test_a_stray_quote_saves_two_parts() -> None:
    text = "x" * 200 + "’"
    assert count_segments(text).segments == 3
    out = smart_encode(text)
    assert (count_segments(out.text).segments, out.replaced) == (2, 1)


@pytest.mark.parametrize("text", ["It’s 😀", "Cześć — “hi”", "日本 …"])
def test_a_text_that_needs_ucs2_anyway_is_left_exactly_as_given(text: str) -> None:
    out = smart_encode(text)
    assert (out.text, out.replaced) == (text, 0)
    assert count_segments(out.text).encoding == "UCS-2"


def test_the_policy_switch_and_non_sms_content() -> None:
    assert SendPolicy.of(smart_encoding=False).text("It’s").text == "It’s"
    assert SendPolicy.of().text("It’s").text == "It's"
    assert SendPolicy.of().text("It’s", sms=False).text == "It’s"  # MMS and binary go as given
