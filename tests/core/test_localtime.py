"""``core.localtime`` at fixed instants: Sydney, Los Angeles and Lagos across their DST changes, both
sides of the date line, quiet hours spanning midnight, and the zone rules for numbers with several zones
or none."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import pytest

from airflow_provider_sms.core.errors import SmsValidationError
from airflow_provider_sms.core.localtime import (
    QuietHours,
    Slot,
    parse_clock,
    plan_times,
    slots_for,
    zones_for,
)

SYDNEY, LOS_ANGELES, LAGOS = "+61291234567", "+14155550123", "+2348012345678"
AU_MOBILE, US_TOLL_FREE, UK_MOBILE = "+61400000001", "+18005550123", "+447700900123"
NIGHT = QuietHours.parse(("21:00", "08:00"))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def at_nine(number: str, now: str, tz: str | None = None, **kwargs: object) -> datetime | None:
    timing = plan_times([(number, tz)], now=utc(now), local_time=time(9), **kwargs)[number]  # type: ignore[arg-type]
    return timing.deliver_at


@pytest.mark.parametrize(
    ("number", "now", "expected"),
    [
        # Sydney: AEST (+10) until 4 Oct 2026 02:00, then AEDT (+11); back to AEST on 5 Apr 2026
        (SYDNEY, "2026-10-03T12:00:00", "2026-10-03T22:00:00"),  # 22:00 AEST -> 09:00 AEDT, across the change
        (SYDNEY, "2026-10-03T23:30:00", "2026-10-04T22:00:00"),  # 10:30 AEDT: today's 09:00 is gone
        (SYDNEY, "2026-04-04T12:00:00", "2026-04-04T23:00:00"),  # 23:00 AEDT -> 09:00 AEST (+10)
        (SYDNEY, "2026-07-01T00:00:00", "2026-07-01T23:00:00"),  # 10:00 AEST
        # Los Angeles: PDT (-7) from 8 Mar 2026, PST (-8) from 1 Nov 2026
        (LOS_ANGELES, "2026-03-07T20:00:00", "2026-03-08T16:00:00"),  # 12:00 PST -> 09:00 PDT next day
        (LOS_ANGELES, "2026-10-31T20:00:00", "2026-11-01T17:00:00"),  # 13:00 PDT -> 09:00 PST next day
        (LOS_ANGELES, "2026-11-23T15:00:00", "2026-11-23T17:00:00"),  # 07:00 PST -> 09:00 today
        # Lagos: WAT (+1), no DST
        (LAGOS, "2026-11-23T06:00:00", "2026-11-23T08:00:00"),
        (LAGOS, "2026-11-23T08:00:01", "2026-11-24T08:00:00"),  # a second past 09:00: tomorrow
        (LAGOS, "2026-06-30T23:30:00", "2026-07-01T08:00:00"),  # across midnight UTC and a month
    ],
)
def test_local_time_per_zone_across_dst(number: str, now: str, expected: str) -> None:
    assert at_nine(number, now) == utc(expected)


def test_within_two_minutes_goes_now() -> None:
    assert at_nine(LAGOS, "2026-11-23T07:59:00") is None


def test_both_sides_of_the_date_line() -> None:
    now = "2026-11-23T12:00:00"  # 02:00 on the 24th in Kiritimati (+14), 01:00 on the 23rd in Pago Pago (-11)
    assert at_nine("+61400000002", now, tz="Pacific/Kiritimati") == utc("2026-11-23T19:00:00")
    assert at_nine("+61400000002", now, tz="Pacific/Pago_Pago") == utc("2026-11-23T20:00:00")


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-11-23T19:59:00", None),  # 20:59 in Lagos: not yet quiet
        ("2026-11-23T20:00:00", "2026-11-24T07:00:00"),  # 21:00: held until 08:00 tomorrow
        ("2026-11-24T01:00:00", "2026-11-24T07:00:00"),  # 02:00: held until 08:00 today
        ("2026-11-24T06:59:00", "2026-11-24T07:00:00"),  # 07:59: one minute to go (later than "now")
        ("2026-11-24T07:00:00", None),  # 08:00: free
    ],
)
def test_quiet_hours_spanning_midnight(now: str, expected: str | None) -> None:
    timing = plan_times([(LAGOS, None)], now=utc(now), quiet_hours=NIGHT)[LAGOS]
    assert timing.deliver_at == (utc(expected) if expected else None)
    assert timing.held is (expected is not None)


def test_quiet_hours_within_a_day_and_across_dst() -> None:
    lunch = QuietHours.parse("12:00-14:00")
    assert plan_times([(LAGOS, None)], now=utc("2026-11-23T12:00:00"), quiet_hours=lunch)[LAGOS].deliver_at == utc(
        "2026-11-23T13:00:00"
    )
    # 03:30 AEDT on the morning Sydney's clocks went forward: held until 08:00 AEDT (21:00Z)
    sydney = plan_times([(SYDNEY, None)], now=utc("2026-10-03T16:30:00"), quiet_hours=NIGHT)[SYDNEY]
    assert sydney.deliver_at == utc("2026-10-03T21:00:00") and sydney.held
    # 01:30 PDT on the night Los Angeles' clocks go back: held until 08:00 PST (16:00Z)
    la = plan_times([(LOS_ANGELES, None)], now=utc("2026-11-01T08:30:00"), quiet_hours=NIGHT)[LOS_ANGELES]
    assert la.deliver_at == utc("2026-11-01T16:00:00")


def test_local_time_inside_quiet_hours_moves_to_their_end() -> None:
    timing = plan_times([(LAGOS, None)], now=utc("2026-11-23T12:00:00"), local_time=time(7), quiet_hours=NIGHT)[LAGOS]
    assert timing.deliver_at == utc("2026-11-24T07:00:00") and timing.held


def test_zone_rules_tz_then_number_then_default_tz() -> None:
    assert zones_for(SYDNEY) == (("Australia/Sydney",), "number")
    assert zones_for(SYDNEY, tz="Africa/Lagos") == (("Africa/Lagos",), "tz")
    assert zones_for(AU_MOBILE, default_tz="Australia/Perth") == (("Australia/Perth",), "default_tz")
    assert zones_for(LAGOS, default_tz="Australia/Perth") == (("Africa/Lagos",), "number")  # one zone: its own
    assert zones_for(UK_MOBILE, default_tz="Europe/London") == (("Europe/London",), "default_tz")
    zones, rule = zones_for(AU_MOBILE)
    assert "Australia/Sydney" in zones and rule == f"all {len(zones)} zones of the number"


def test_a_number_with_several_zones_respects_all_of_them() -> None:
    # 21:30 in Sydney, 18:30 in Perth, 17:00 on the Cocos Islands: held until 08:00 has come everywhere
    timing = plan_times([(AU_MOBILE, None)], now=utc("2026-11-23T10:30:00"), quiet_hours=NIGHT)[AU_MOBILE]
    assert timing.deliver_at == utc("2026-11-24T01:30:00")  # 08:00 on Cocos, 12:30 in Sydney
    nine = plan_times([(AU_MOBILE, None)], now=utc("2026-11-23T10:30:00"), local_time=time(9))[AU_MOBILE]
    assert (nine.deliver_at, nine.zone) == (utc("2026-11-24T02:30:00"), "Indian/Cocos")  # nobody before 09:00


def test_numbers_that_cannot_be_placed_fail_before_sending() -> None:
    with pytest.raises(SmsValidationError, match="no time zone is known for \\+447700900123"):
        plan_times([(UK_MOBILE, None)], now=utc("2026-11-23T10:00:00"), quiet_hours=NIGHT)
    # US toll-free numbers span Guam to Newfoundland: 10.5 hours apart, more than a 10-hour day leaves
    long_night = QuietHours.parse(("20:00", "10:00"))
    with pytest.raises(SmsValidationError, match="never end in every zone of \\+18005550123"):
        plan_times([(US_TOLL_FREE, None)], now=utc("2026-11-23T10:00:00"), quiet_hours=long_night)
    assert plan_times([(US_TOLL_FREE, None)], now=utc("2026-11-23T10:00:00"), quiet_hours=NIGHT)  # 13 hours do
    with pytest.raises(SmsValidationError, match="not a time zone"):
        plan_times([(LAGOS, "Mars/Olympus")], now=utc("2026-11-23T10:00:00"), quiet_hours=NIGHT)


@pytest.mark.parametrize("bad", ["9", "9am", "24:00", "09:60", "", "09:00:60", "09:00:00.5"])
def test_bad_clock_strings(bad: str) -> None:
    with pytest.raises(SmsValidationError, match="24-hour time"):
        parse_clock(bad)


@pytest.mark.parametrize("bad", [("21:00",), "21:00", ("21:00", "21:00"), ("21:00", "late"), 5])
def test_bad_quiet_hours(bad: object) -> None:
    with pytest.raises(SmsValidationError):
        QuietHours.parse(bad)


def test_slots_group_by_time_then_text_now_first() -> None:
    timings = plan_times(
        [(LAGOS, None), (SYDNEY, None), (LOS_ANGELES, None)], now=utc("2026-11-23T20:30:00"), quiet_hours=NIGHT
    )
    # 21:30 in Lagos (held), 07:30 in Sydney (held), 12:30 in LA (now)
    slots = slots_for([(LAGOS, "a"), (SYDNEY, "a"), (LOS_ANGELES, "a"), ("12", "a")], timings)
    assert [(s.deliver_at, s.to) for s in slots] == [
        (None, [LOS_ANGELES, "12"]),
        (utc("2026-11-23T21:00:00"), [SYDNEY]),
        (utc("2026-11-24T07:00:00"), [LAGOS]),
    ]
    assert Slot.from_dict(slots[1].to_dict()) == slots[1]


def test_a_number_spanning_the_date_line_gets_local_time_nowhere_early() -> None:
    # US toll-free: Guam (UTC+10) to Newfoundland (UTC-3:30). 06:00 comes last in Guam, a day ahead.
    timing = plan_times([(US_TOLL_FREE, None)], now=utc("2026-11-23T10:00:00"), local_time=time(6))[US_TOLL_FREE]
    assert (timing.deliver_at, timing.zone) == (utc("2026-11-23T20:00:00"), "Pacific/Guam")  # not Pago Pago's 17:00
    zones, _rule = zones_for(US_TOLL_FREE)
    for hour in range(0, 24, 1):  # whatever the time of the send, nobody's clock is before 06:00 on arrival
        now = utc(f"2026-07-01T{hour:02d}:20:00")
        at = plan_times([(US_TOLL_FREE, None)], now=now, local_time=time(6))[US_TOLL_FREE].deliver_at
        assert at is not None and now < at <= now + timedelta(days=1)
        import pendulum

        early = [z for z in zones if pendulum.instance(at).in_timezone(z).time() < time(6)]
        assert early == [], f"sent at {at} (now {now}): before 06:00 in {early}"


def test_local_time_that_cannot_come_before_midnight_everywhere_fails_before_sending() -> None:
    # 14:00 in Guam is past 00:00 in Newfoundland: one of the zones would get it before its 14:00
    with pytest.raises(SmsValidationError, match="local_time 14:00 cannot come on the same day in every zone"):
        plan_times([(US_TOLL_FREE, None)], now=utc("2026-11-23T10:00:00"), local_time=time(14))
    fixed = plan_times(
        [(US_TOLL_FREE, None)], now=utc("2026-11-23T10:00:00"), local_time=time(14), default_tz="America/Chicago"
    )[US_TOLL_FREE]
    assert fixed.deliver_at == utc("2026-11-23T20:00:00")


def test_quiet_hours_hold_a_date_line_number_until_morning_in_guam() -> None:
    # 09:00 in Honolulu, but 05:00 in Guam: held until 08:00 in Guam (10:00 in Honolulu)
    timing = plan_times([(US_TOLL_FREE, None)], now=utc("2026-11-23T19:00:00"), quiet_hours=NIGHT)[US_TOLL_FREE]
    assert (timing.deliver_at, timing.zone, timing.held) == (utc("2026-11-23T22:00:00"), "Pacific/Guam", True)
