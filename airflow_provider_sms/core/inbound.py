"""Matching inbound replies: the one function the sensor and both triggers use.

A filter keeps messages received at or after ``since``, from one of ``from_numbers`` (normalized to
E.164 like every other number), whose text matches ``match``: a regular expression searched in the
text, or a list of keywords matched case-insensitively as whole words. The hooks list messages newest
first and stop paging at ``since``; ``scan_replies`` walks that stream once, keeping only the earliest
match (the first answer counts) and the newest time seen (the cursor for the next poll).
``poll_replies`` also hands every STOP/START reply it sees (``opt_out_word``), from anyone, to the
hook's ``note_inbound``, so each poll feeds the opt-out register.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_sms.core.errors import SmsValidationError

if TYPE_CHECKING:
    from airflow_provider_sms.core.results import InboundMessage

# How far ahead of our clock a provider's timestamps may run before we stop trusting them as a cursor.
CLOCK_SKEW = timedelta(minutes=5)
# How far a provider's clock may lag ours when it stamps a reply to a question: a reply stamped more than
# this before the question was accepted was sent before it, and never answers it.
REPLY_SKEW = timedelta(seconds=1)
# The shortest poll interval any sensor or trigger accepts (seconds): a shorter one would spin the poll.
MIN_POLL_INTERVAL = 1.0

# The replies that opt a number out of texts, or back in (``state.opt_outs`` keeps the register).
OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN_WORDS = frozenset({"START", "UNSTOP"})
_ONE_WORD = re.compile(r"[\W_]*([^\W\d_]+)[\W_]*")


def opt_out_word(text: str | None) -> str | None:
    """``"stop"`` when the whole text is an opt-out word (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT),
    ``"start"`` for START or UNSTOP, else None; any case, with spaces and punctuation around it
    (``" Stop! "``), never a word inside a longer text (``"don't stop"`` is None)."""
    found = _ONE_WORD.fullmatch(text or "")
    if found is None:
        return None
    word = found.group(1).upper()
    if word in OPT_OUT_WORDS:
        return "stop"
    if word in OPT_IN_WORDS:
        return "start"
    return None


def check_poll_interval(seconds: Any, *, name: str = "poll_interval") -> float:
    """``seconds`` as a float, refused (with the minimum named) when it is below ``MIN_POLL_INTERVAL``."""
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        raise SmsValidationError(f"{name} must be a number of seconds, got {seconds!r}") from None
    if not (value >= MIN_POLL_INTERVAL and math.isfinite(value)):  # also refuses NaN
        raise SmsValidationError(f"{name} must be at least {MIN_POLL_INTERVAL:g} s, got {seconds!r}")
    return value


def compile_match(match: str | Sequence[str] | None) -> re.Pattern[str] | None:
    """A regex (used as given) or keywords (whole words, any case) as one compiled pattern."""
    if match is None or match == "" or (not isinstance(match, str) and not list(match)):
        return None
    if isinstance(match, str):
        try:
            return re.compile(match)
        except re.error as err:
            raise SmsValidationError(f"match pattern {match!r} is not a valid regular expression: {err}") from None
    words = [str(w).strip() for w in match if str(w).strip()]
    if not words:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)", re.IGNORECASE)


@dataclass
class InboundFilter:
    """Which inbound messages count as the reply we wait for."""

    from_numbers: frozenset[str] = frozenset()
    pattern: re.Pattern[str] | None = None
    since: datetime | None = None
    skip_ids: frozenset[str] = field(default_factory=frozenset)

    def matches(self, message: InboundMessage) -> bool:
        if message.message_id in self.skip_ids:
            return False
        if self.since is not None and message.received_at < self.since:
            return False
        if self.from_numbers and message.from_number not in self.from_numbers:
            return False
        return self.pattern is None or self.pattern.search(message.text) is not None


def build_filter(
    *,
    from_numbers: Any = None,
    match: str | Sequence[str] | None = None,
    since: datetime | str | None = None,
    default_region: str | None = None,
) -> InboundFilter:
    """Normalize the sensor's arguments into an ``InboundFilter`` (bad numbers or regex raise)."""
    from airflow_provider_sms.core.phone import normalize_number, split_recipients
    from airflow_provider_sms.core.timestamps import parse_timestamp

    numbers = frozenset(normalize_number(n, default_region) for n in split_recipients(from_numbers))
    # Providers report times to the second (Cloudware) or millisecond: a reply in the same second as
    # ``since`` must count, so the bound is floored to the whole second.
    start = parse_timestamp(since).replace(microsecond=0) if since else None
    return InboundFilter(from_numbers=numbers, pattern=compile_match(match), since=start)


@dataclass
class Scan:
    """The outcome of one pass: the earliest matching reply, and the newest message time and ids seen."""

    match: InboundMessage | None = None
    newest: datetime | None = None
    newest_ids: frozenset[str] = frozenset()
    all_matches: list[InboundMessage] = field(default_factory=list)


def scan_replies(
    messages: Iterable[InboundMessage], flt: InboundFilter, *, keep_all: bool = False, now: datetime | None = None
) -> Scan:
    """Walk messages (newest first) once: keep the earliest match and the cursor for the next poll.

    A message listed twice in one poll (the same id on one page, or on two) counts once. The cursor is
    the newest *plausible* time: a message stamped beyond the poll's own clock (plus ``CLOCK_SKEW``
    for a provider whose clock runs ahead) can still match, but never moves the cursor, so one
    message stamped 2099 cannot make every later reply look old.

    :param keep_all: also collect every match, oldest first (event triggers fire once per message).
    """
    scan = Scan()
    ids_at_newest: set[str] = set()
    seen: set[str] = set()
    plausible = (now or datetime.now(timezone.utc)) + CLOCK_SKEW
    for message in messages:
        if message.message_id in seen:
            continue
        seen.add(message.message_id)
        if message.received_at > plausible:
            pass
        elif scan.newest is None or message.received_at > scan.newest:
            scan.newest = message.received_at
            ids_at_newest = {message.message_id}
        elif message.received_at == scan.newest:
            ids_at_newest.add(message.message_id)
        if flt.matches(message):
            if scan.match is None or message.received_at <= scan.match.received_at:
                scan.match = message
            if keep_all:
                scan.all_matches.append(message)
    scan.newest_ids = frozenset(ids_at_newest)
    # oldest first; the listing is newest first, so reversing it first keeps the order of same-second ties
    scan.all_matches = sorted(reversed(scan.all_matches), key=lambda m: m.received_at)
    return scan


def poll_replies(hook: Any, flt: InboundFilter, *, keep_all: bool = False, stop_at: float | None = None) -> Scan:
    """One poll: list what the provider received since the filter's cursor and scan it; the STOP and
    START replies among what was listed go to ``hook.note_inbound`` (the opt-out register).

    :param stop_at: a ``time.monotonic()`` deadline for the poll (paging stops there).
    """
    messages = hook.iter_messages(since=flt.since, stop_at=stop_at, known=flt.skip_ids)
    keywords: list[InboundMessage] = []
    scan = scan_replies(_noting_keywords(messages, keywords), flt, keep_all=keep_all)
    note = getattr(hook, "note_inbound", None)
    if keywords and note is not None:  # STOP and START from anyone, whatever this poll waits for
        note(keywords)
    return scan


def _noting_keywords(messages: Iterable[InboundMessage], into: list[InboundMessage]) -> Iterator[InboundMessage]:
    for message in messages:
        if opt_out_word(message.text) is not None:
            into.append(message)
        yield message


def advance(flt: InboundFilter, scan: Scan) -> InboundFilter:
    """The filter for the next poll: start at the newest plausible message seen, skipping the ids seen there."""
    if scan.newest is None or (flt.since is not None and scan.newest < flt.since):
        return flt
    skip = scan.newest_ids | (flt.skip_ids if flt.since == scan.newest else frozenset())
    return InboundFilter(flt.from_numbers, flt.pattern, scan.newest, skip)
