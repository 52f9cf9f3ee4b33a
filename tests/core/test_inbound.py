from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_sms.core.errors import SmsValidationError
from airflow_provider_sms.core.inbound import CLOCK_SKEW, advance, build_filter, compile_match, scan_replies
from airflow_provider_sms.core.results import InboundMessage

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def msg(mid: str, text: str, minutes: int, sender: str = "+61400000001") -> InboundMessage:
    return InboundMessage("cloudware", mid, sender, None, text, T0 + timedelta(minutes=minutes))


@pytest.mark.parametrize(
    ("text", "matched"),
    [("YES", True), ("yes please", True), ("Ok, Yes!", True), ("yesterday", False), ("eyes", False), ("no", False)],
)
def test_keywords_match_whole_words_in_any_case(text: str, matched: bool) -> None:
    pattern = compile_match(["YES", "Y"])
    assert pattern is not None
    assert (pattern.search(text) is not None) is matched


def test_regex_is_used_as_given_and_bad_regex_names_the_pattern() -> None:
    pattern = compile_match(r"^APPROVE \d+$")
    assert pattern is not None and pattern.search("APPROVE 42")
    assert compile_match(None) is None
    with pytest.raises(SmsValidationError, match=r"'\(unclosed'"):
        compile_match("(unclosed")


def test_from_numbers_are_normalized() -> None:
    flt = build_filter(from_numbers="0400000001, +61 400 000 002", default_region="AU")
    assert flt.from_numbers == {"+61400000001", "+61400000002"}
    assert flt.matches(msg("a", "hi", 0, sender="+61400000002"))
    assert not flt.matches(msg("b", "hi", 0, sender="+61400000009"))


def test_scan_returns_the_earliest_match_after_since_and_the_cursor() -> None:
    flt = build_filter(match=["yes", "no"], since=T0 + timedelta(minutes=1))
    stream = [msg("m4", "NO", 4), msg("m3", "maybe", 3), msg("m2", "yes", 2), msg("m0", "yes", 0)]
    scan = scan_replies(iter(stream), flt)
    assert scan.match is not None and scan.match.message_id == "m2"
    assert scan.newest == T0 + timedelta(minutes=4)
    assert scan.newest_ids == {"m4"}


def test_advance_moves_the_cursor_and_skips_what_was_seen() -> None:
    flt = build_filter(match=["yes"], since=T0)
    first = scan_replies([msg("m1", "hello", 5)], flt, now=T0 + timedelta(hours=1))
    nxt = advance(flt, first)
    assert nxt.since == T0 + timedelta(minutes=5)
    assert not nxt.matches(msg("m1", "yes", 5))  # the same message is not matched twice
    assert nxt.matches(msg("m2", "yes", 5))  # another message at the same second still counts


def test_keep_all_collects_every_match_oldest_first() -> None:
    flt = build_filter(match=["yes"], since=T0)
    scan = scan_replies([msg("b", "yes", 2), msg("x", "no", 1), msg("a", "yes", 1)], flt, keep_all=True)
    assert [m.message_id for m in scan.all_matches] == ["a", "b"]


def test_since_counts_a_reply_in_the_same_second_as_a_provider_reports_it() -> None:
    flt = build_filter(since=T0 + timedelta(microseconds=700_000))
    assert flt.since == T0
    assert flt.matches(msg("same-second", "YES", 0))


def test_the_cursor_never_passes_the_polls_own_clock() -> None:
    flt = build_filter(match=["yes"], since=T0)
    poisoned = scan_replies([msg("future", "hello", 60 * 24 * 365), msg("real", "hmm", 1)], flt, now=T0)
    nxt = advance(flt, poisoned)
    assert nxt.since == T0 + timedelta(minutes=1)  # the newest plausible message, not 2099
    assert nxt.matches(msg("reply", "yes", 6))  # a real reply after the poll still counts
    skewed = scan_replies([msg("ahead", "hmm", 4)], flt, now=T0)  # a provider clock a little ahead
    assert skewed.newest == T0 + timedelta(minutes=4) < T0 + CLOCK_SKEW


def test_a_message_listed_twice_in_one_poll_counts_once() -> None:
    flt = build_filter(match=["yes"], since=T0)
    scan = scan_replies([msg("a", "yes", 1), msg("a", "yes", 1), msg("b", "yes", 2)], flt, keep_all=True)
    assert [m.message_id for m in scan.all_matches] == ["a", "b"]
