"""Each recipient's own time: their time zone, the next ``local_time`` there, and quiet hours.

Which zone a recipient is in, in this order:

1. the row's ``tz`` (personalized ``messages``), which always wins;
2. the number's only zone, from ``phonenumbers`` (``+1 415`` is Los Angeles, ``+234`` Lagos);
3. ``default_tz``, for a number that spans several zones (most Australian mobiles, US toll-free) or
   none (``phonenumbers`` knows no zone for UK mobiles);
4. otherwise, for a number with several zones, all of them are respected, so nobody receives before
   ``local_time`` or inside the quiet hours: the message goes when ``local_time`` has come, the same
   local day, in every zone (at ``local_time`` in the zone whose clock reaches it last, read on the
   clock face: Guam, not Pago Pago, for a US toll-free number, although Guam is a day ahead), and
   quiet hours hold it while it is night in any of them. A number with no known zone, whose zones are
   too far apart for ``local_time`` to come before midnight in all of them, or whose zones leave no
   moment outside the quiet hours, fails the send before anything goes out, asking for a ``tz`` or
   ``default_tz``.

Everything here is pure computation on aware datetimes (``pendulum`` for zone arithmetic across DST
changes); ``plan_times`` is what the operators call.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import Any

from airflow_provider_sms.core.errors import SmsValidationError

NOW_MARGIN = timedelta(minutes=2)  # a local_time closer than this is sent now (quiet hours are never cut)
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")
_SEARCH_DAYS = 3  # quiet hours must open within this many days, or they never will


def parse_clock(value: str | time, what: str = "time") -> time:
    """``"09:00"`` (24-hour ``HH:MM``, seconds optional) or a ``datetime.time`` as a time of day."""
    if isinstance(value, time):
        return value.replace(microsecond=0, tzinfo=None)
    found = _CLOCK.match(str(value).strip())
    if not found:
        raise SmsValidationError(f"{what} {value!r} is not a 24-hour time like '09:00'")
    return time(int(found.group(1)), int(found.group(2)), int(found.group(3) or 0))


def check_zone(name: str) -> str:
    """``name`` when it is an IANA time zone (``Australia/Sydney``), else a clear error."""
    import pendulum

    try:
        pendulum.timezone(str(name))
    except Exception:  # pendulum raises its own InvalidTimezone, a subclass of ValueError on some versions
        raise SmsValidationError(f"{name!r} is not a time zone; use an IANA name such as 'Australia/Sydney'") from None
    return str(name)


@dataclass(frozen=True)
class QuietHours:
    """A daily window in which nobody is texted, e.g. 21:00 to 08:00 (it may span midnight)."""

    start: time
    end: time

    @classmethod
    def parse(cls, value: Any) -> QuietHours:
        """``("21:00", "08:00")``, ``["21:00", "08:00"]`` or ``"21:00-08:00"``."""
        if isinstance(value, QuietHours):
            return value
        parts = value.split("-") if isinstance(value, str) else list(value) if isinstance(value, Sequence) else []
        if len(parts) != 2:
            raise SmsValidationError(f"quiet_hours {value!r} must be (start, end), e.g. ('21:00', '08:00')")
        start, end = parse_clock(parts[0], "quiet_hours start"), parse_clock(parts[1], "quiet_hours end")
        if start == end:
            raise SmsValidationError(
                f"quiet_hours from {start:%H:%M} to {end:%H:%M} is either empty or the whole day; "
                "give a window such as ('21:00', '08:00')"
            )
        return cls(start, end)

    def contains(self, local: datetime) -> bool:
        clock = local.time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= clock < self.end
        return clock >= self.start or clock < self.end

    def __str__(self) -> str:
        return f"{self.start.isoformat('minutes')}-{self.end.isoformat('minutes')}"


@dataclass(frozen=True)
class Timing:
    """When one recipient gets the message, and why.

    :param deliver_at: aware UTC, or None for now.
    :param zone: the zone that decided it (None when neither ``local_time`` nor quiet hours applied).
    :param rule: ``tz``, ``number``, ``default_tz`` or ``all N zones of the number``.
    :param held: quiet hours moved it later.
    """

    to: str
    deliver_at: datetime | None
    zone: str | None
    rule: str | None
    held: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "deliver_at": self.deliver_at.isoformat() if self.deliver_at else None,
            "zone": self.zone,
            "zone_rule": self.rule,
            "held_for_quiet_hours": self.held,
        }


def zones_for(number: str, *, tz: str | None = None, default_tz: str | None = None) -> tuple[tuple[str, ...], str]:
    """The zones to respect for ``number`` (E.164) and the rule that chose them."""
    if tz:
        return (check_zone(tz),), "tz"
    import phonenumbers
    from phonenumbers import timezone as phone_zones

    try:
        found = tuple(z for z in phone_zones.time_zones_for_number(phonenumbers.parse(number)) if z != "Etc/Unknown")
    except phonenumbers.NumberParseException:
        found = ()
    if len(found) == 1:
        return found, "number"
    if default_tz:
        return (check_zone(default_tz),), "default_tz"
    if not found:
        raise SmsValidationError(
            f"no time zone is known for {number}; give its tz in messages, or default_tz for the send"
        )
    return found, f"all {len(found)} zones of the number"


def _local(moment: datetime, zone: str) -> Any:
    import pendulum

    return pendulum.instance(moment).in_timezone(zone)


def _at(day: Any, clock: time, zone: str) -> datetime:
    """``clock`` on ``day`` (a pendulum date) in ``zone``, as UTC; a time skipped by DST moves forward."""
    import pendulum

    local = pendulum.datetime(day.year, day.month, day.day, clock.hour, clock.minute, clock.second, tz=zone)
    return datetime.fromtimestamp(local.timestamp(), tz=timezone.utc)


def next_local_time(now: datetime, zones: Sequence[str], clock: time) -> tuple[datetime, str] | None:
    """The first moment after ``now`` at which ``clock`` has come, the same local day, in every one of
    ``zones``; return it and the zone that reaches ``clock`` last (whose ``clock`` it is).

    "Last" is read on the clock face, not by UTC offset: for a US toll-free number, whose zones run from
    Guam (UTC+10) to Newfoundland, 06:00 comes last in Guam, a calendar day ahead but four hours behind
    Honolulu's clock; going by the smallest offset (Pago Pago, UTC-11) would text Guam at 03:00.
    None when no such moment exists: the zones are too far apart for ``clock`` to be on the same side
    of midnight everywhere (``local_time`` 14:00 across the 10.5 hours of a toll-free number).
    """
    candidates = []
    for zone in zones:
        local = _local(now, zone)
        for days in range(3):  # today's, tomorrow's and the next day's clock, whatever the DST change
            moment = _at(local.add(days=days), clock, zone)
            if moment > now:
                candidates.append((moment, zone))
    for moment, zone in sorted(candidates):
        if all(_local(moment, other).time().replace(tzinfo=None) >= clock for other in zones):
            return moment, zone
    return None


def release_time(moment: datetime, zones: Sequence[str], quiet: QuietHours) -> datetime | None:
    """The first moment at or after ``moment`` outside the quiet hours in every zone; None if none
    comes within a few days (the zones' nights cover the whole day)."""
    candidates = {moment}
    for zone in zones:
        day = _local(moment, zone)
        for offset in range(-1, _SEARCH_DAYS):
            end = _at(day.add(days=offset), quiet.end, zone)
            if end >= moment:
                candidates.add(end)
    for candidate in sorted(candidates):
        if not any(quiet.contains(_local(candidate, zone)) for zone in zones):
            return candidate
    return None


def plan_times(
    numbers: Iterable[tuple[str, str | None]],
    *,
    now: datetime,
    local_time: time | None = None,
    quiet_hours: QuietHours | None = None,
    default_tz: str | None = None,
) -> dict[str, Timing]:
    """When each recipient gets the message: ``numbers`` are ``(e164, tz or None)``.

    Without ``local_time`` a recipient goes now, unless quiet hours hold them; with it, at the next
    ``local_time`` in their zone (moved to the end of the quiet hours if it falls inside them).
    """
    timings: dict[str, Timing] = {}
    for number, tz in numbers:
        if number in timings:
            continue
        zones, rule = zones_for(number, tz=tz, default_tz=default_tz)
        deliver, zone = now, zones[0]
        if local_time is not None:
            found = next_local_time(now, zones, local_time)
            if found is None:
                raise SmsValidationError(
                    f"local_time {local_time:%H:%M} cannot come on the same day in every zone of {number} "
                    f"({', '.join(zones[:5])}{'...' if len(zones) > 5 else ''}): someone would get it after "
                    "midnight, before their local_time; give its tz in messages, or default_tz"
                )
            deliver, zone = found
        held = False
        if quiet_hours is not None:
            released = release_time(deliver, zones, quiet_hours)
            if released is None:
                raise SmsValidationError(
                    f"quiet hours {quiet_hours} never end in every zone of {number} ({', '.join(zones[:5])}"
                    f"{'...' if len(zones) > 5 else ''}); give its tz in messages, or default_tz"
                )
            held = released > deliver
            if held:
                zone = next(z for z in zones if quiet_hours.contains(_local(deliver, z)))
            deliver = released
        at = None if deliver - now < NOW_MARGIN and not held else deliver  # never early into quiet hours
        timings[number] = Timing(number, at, zone, rule, held)
    return timings


@dataclass
class Slot:
    """One text to several recipients at one time (None: now): one send, one provider batch or more."""

    deliver_at: datetime | None
    message: str
    to: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "deliver_at": self.deliver_at.isoformat() if self.deliver_at else None,
            "message": self.message,
            "to": list(self.to),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Slot:
        at = data.get("deliver_at")
        return cls(datetime.fromisoformat(at) if at else None, str(data["message"]), list(data["to"]))


def slots_for(rows: Iterable[tuple[str, str]], timings: dict[str, Timing]) -> list[Slot]:
    """Group ``(recipient, text)`` rows by delivery time and text, earliest first (now before any time);
    a recipient without a timing (a number that will be rejected anyway) goes now."""
    grouped: dict[tuple[datetime | None, str], list[str]] = {}
    for to, text in rows:
        timing = timings.get(to)
        grouped.setdefault((timing.deliver_at if timing else None, text), []).append(to)
    earliest = datetime.min.replace(tzinfo=timezone.utc)  # "now" sorts first
    ordered = sorted(grouped.items(), key=lambda item: item[0][0] or earliest)
    return [Slot(at, text, to) for (at, text), to in ordered]
