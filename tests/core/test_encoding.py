from __future__ import annotations

import pytest

from airflow_provider_sms.core.encoding import count_segments


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", "GSM-7", 0, 0),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),  # extension characters cost two septets
        ("€" * 81, "GSM-7", 162, 2),
        ("é@£ÄÖÑÜ§¿", "GSM-7", 9, 1),
        ("é" * 70 + "ł", "UCS-2", 71, 2),
        ("ł" * 70, "UCS-2", 70, 1),
        ("ł" * 71, "UCS-2", 71, 2),
        ("ł" * 134, "UCS-2", 134, 2),
        ("ł" * 135, "UCS-2", 135, 3),
        ("😀" * 35, "UCS-2", 70, 1),  # an emoji is a surrogate pair: two code units
        ("😀" * 36, "UCS-2", 72, 2),
    ],
)
def test_count_segments(text: str, encoding: str, units: int, segments: int) -> None:
    info = count_segments(text)
    assert (info.encoding, info.units, info.segments) == (encoding, units, segments)
    assert info.characters == len(text)


def test_escape_pair_is_not_split_across_parts() -> None:
    # 152 plain septets then a two-septet character: it cannot fit in part one's 153rd septet.
    text = "a" * 152 + "€" + "a" * 152
    assert count_segments(text).units == 306
    assert count_segments(text).segments == 3


def test_surrogate_pair_is_not_split_across_parts() -> None:
    text = "ł" * 66 + "😀" + "ł" * 66
    assert count_segments(text).segments == 3
