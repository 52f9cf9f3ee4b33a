"""Delivery-based fallback and escalation: which text goes next, to whom and through which connection.

A ``FallbackPolicy`` is a ladder: the recipients of ``to`` are level 0, each entry of the escalation
list a further level; at each level, every connection of ``conn_ids`` (the primary, then the
fallbacks) in order. A ``Ladder`` is where one send stands on it (JSON-safe, so it travels with a
deferral). After each send the caller waits (``wait_for``); what it learns (delivery reports, an ``ACK``
reply, the clock) goes in with ``apply_reports``/``acknowledge``, and ``due_sends`` says what to send
next:

- a recipient whose text was confirmed (``delivered``, or the furthest status its provider reports:
  ``sent`` for Cloudware) is never texted again;
- a recipient whose text failed, expired, was rejected, or had no confirmation by ``deliver_within``
  after it was sent gets it through the next connection (a refusal, such as an outage, credit or the
  provider's rejection, moves on at once; a request in doubt waits like a text with no report; an
  invalid number or an opt-out never moves on);
- when every connection was tried for every recipient of a level and none of them was reached, the
  next level is texted (with ``ack_within``: when nobody of the paged levels acknowledged in time,
  whether or not they were reached);
- an acknowledgement ends the ladder.

Nothing here sends, polls or sleeps: the caller does, each step once through the send ledger (a step
is named by ``step_key``), so a retried or repeated run replays the ladder without texting anyone twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_sms.core.errors import SmsValidationError
from airflow_provider_sms.core.results import UNDELIVERED_STATUSES, DeliveryReport

# Refusals no other connection would change: the number itself is the problem.
PERMANENT_CODES = frozenset({"invalid_number", "unsubscribed", "country_not_allowed", "invalid_input"})
DEFAULT_ACK_MATCH = ("ACK",)

PENDING, CONFIRMED, UNDELIVERED, NO_REPORT, REFUSED = "pending", "confirmed", "undelivered", "no_report", "refused"


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _at(text: str) -> datetime:
    from airflow_provider_sms.core.timestamps import parse_timestamp

    return parse_timestamp(text)


def positive_seconds(value: timedelta | float | int | None, name: str) -> float | None:
    """``value`` (a timedelta or seconds) in seconds, None for None; anything not above zero is refused."""
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not seconds > 0:
        raise SmsValidationError(f"{name} must be a positive timedelta, not {value!r}")
    return seconds


def _e164(numbers: Any, region: str | None) -> tuple[str, ...]:
    from airflow_provider_sms.core.errors import SmsError
    from airflow_provider_sms.core.phone import normalize_number, split_recipients

    found: dict[str, None] = {}
    for raw in split_recipients(numbers):
        try:
            found[normalize_number(raw, region)] = None
        except SmsError:
            found[raw] = None
    return tuple(found)


@dataclass(frozen=True)
class FallbackPolicy:
    """What to try, in which order, and how long to wait for each.

    :param conn_ids: the connections, primary first.
    :param levels: recipients per level: level 0 is ``to``, then one entry per escalation contact.
    :param deliver_within: seconds a text may take to be confirmed before the next connection takes
        over; None: every accepted text counts as reached (only ``ack_within`` moves on).
    :param ack_within: seconds a level has to acknowledge before the next level is paged; None: no
        acknowledgement is waited for.
    """

    conn_ids: tuple[str, ...]
    levels: tuple[tuple[str, ...], ...]
    deliver_within: float | None = None
    ack_within: float | None = None

    @classmethod
    def of(
        cls,
        conn_ids: Sequence[str],
        to: Iterable[str],
        *,
        escalation: Iterable[Any] = (),
        deliver_within: timedelta | float | None = None,
        ack_within: timedelta | float | None = None,
        region: str | None = None,
    ) -> FallbackPolicy:
        """Build and check a policy: each escalation entry is a number or a list of numbers (a
        comma-separated string is one contact per number). Numbers are kept in E.164 (national ones
        read in ``region``, the primary connection's), as sends report them, so a text is matched to
        its recipient; one that does not parse is kept as given (the send refuses it)."""
        from airflow_provider_sms.core.phone import split_recipients

        conns = tuple(str(c) for c in conn_ids if c)
        if not conns:
            raise SmsValidationError("a fallback needs at least one connection")
        if len(set(conns)) != len(conns):
            raise SmsValidationError(f"a connection appears twice in {list(conns)}")
        levels = [_e164(to, region)]
        if isinstance(escalation, str):  # "a, b": one contact per number
            escalation = split_recipients(escalation)
        for contact in escalation:
            levels.append(_e164(contact, region))
        if not all(levels):
            raise SmsValidationError("every escalation level needs at least one number")
        within = positive_seconds(deliver_within, "deliver_within")
        ack = positive_seconds(ack_within, "ack_within")
        if within is None and ack is None:
            raise SmsValidationError("give deliver_within, ack_within, or both")
        return cls(conns, tuple(levels), within, ack)

    def to_dict(self) -> dict[str, Any]:
        return {
            "conn_ids": list(self.conn_ids),
            "levels": [list(level) for level in self.levels],
            "deliver_within": self.deliver_within,
            "ack_within": self.ack_within,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FallbackPolicy:
        return cls(
            tuple(data["conn_ids"]),
            tuple(tuple(level) for level in data["levels"]),
            data.get("deliver_within"),
            data.get("ack_within"),
        )


@dataclass(frozen=True)
class Step:
    """One send of the ladder: ``numbers`` of ``level`` through ``conn_ids[conn_index]``."""

    level: int
    conn_index: int
    conn_id: str
    numbers: tuple[str, ...]


def step_key(step: Step, text: str) -> str:
    """The send ledger's name for a step: a retried task resends a step only to whom it did not reach."""
    return f"fallback\x1f{step.level}\x1f{step.conn_id}\x1f{text}"


@dataclass
class Ladder:
    """Where one fallback send stands: every text sent so far and what became of it.

    Each entry of ``messages``: ``level``, ``to`` (E.164 or as given when refused), ``conn_index``,
    ``conn_id``, ``message_id`` (None when refused or accepted without an id), ``sent_at``,
    ``deliver_by`` (ISO), ``confirm`` (the status that counts as reached: ``delivered``, or ``sent``
    for a provider whose reports stop there), ``state`` (``pending``, ``confirmed``, ``undelivered``,
    ``no_report``, ``refused``), ``status`` (the provider's last word, in our vocabulary) and ``code``
    (a refusal's code).
    """

    level: int = 0
    level_started: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    acked: dict[str, Any] | None = None
    finished: str | None = None  # delivered, sent (accepted, unconfirmed, nothing left to try), undelivered,
    # acked, no_ack

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "level_started": self.level_started,
            "messages": [dict(m) for m in self.messages],
            "acked": self.acked,
            "finished": self.finished,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ladder:
        return cls(
            int(data.get("level") or 0),
            data.get("level_started"),
            [dict(m) for m in data.get("messages") or []],
            data.get("acked"),
            data.get("finished"),
        )

    # --- what is known per recipient ---------------------------------------------------------------

    def _of(self, level: int, number: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["level"] == level and m["to"] == number]

    def reached(self, number: str) -> bool:
        """Whether any text to ``number`` (at any level) was confirmed."""
        return any(m["to"] == number and m["state"] == CONFIRMED for m in self.messages)

    def paged(self) -> list[str]:
        """Every number a text was accepted for, first paged first."""
        seen: dict[str, None] = {}
        for m in self.messages:
            if m["state"] != REFUSED:
                seen[m["to"]] = None
        return list(seen)

    def first_sent(self) -> str | None:
        return min((m["sent_at"] for m in self.messages if m["state"] != REFUSED), default=None)


def _next_conn(policy: FallbackPolicy, ladder: Ladder, number: str) -> int | None:
    """The connection a recipient of the current level gets its text through next, or None: it has a
    text pending or confirmed, a refusal no connection changes, or every connection was tried."""
    mine = ladder._of(ladder.level, number)
    if not mine:
        return 0
    if ladder.reached(number) or any(m["state"] == PENDING for m in mine):
        return None
    if any(m["state"] == REFUSED and m.get("code") in PERMANENT_CODES for m in mine):
        return None
    index = max(m["conn_index"] for m in mine) + 1
    return index if index < len(policy.conn_ids) else None


def _ack_deadline(policy: FallbackPolicy, ladder: Ladder) -> datetime | None:
    if policy.ack_within is None or ladder.level_started is None:
        return None
    return _at(ladder.level_started) + timedelta(seconds=policy.ack_within)


def expire(ladder: Ladder, now: datetime) -> None:
    """Pending texts whose ``deliver_by`` has passed had no confirmation in time: ``no_report``."""
    for m in ladder.messages:
        if m["state"] == PENDING and m.get("deliver_by") and _at(m["deliver_by"]) <= now:
            m["state"] = NO_REPORT


def due_sends(policy: FallbackPolicy, ladder: Ladder, now: datetime) -> list[Step]:
    """The sends due now (at most one per connection), moving up a level or finishing the ladder when
    the current level is over. Empty: wait (``wait_for``) or, with ``ladder.finished`` set, stop."""
    if ladder.finished:
        return []
    expire(ladder, now)
    while True:
        if ladder.level_started is None:
            ladder.level_started = _iso(now)
        numbers = policy.levels[ladder.level]
        by_conn: dict[int, list[str]] = {}
        for number in numbers:
            index = _next_conn(policy, ladder, number)
            if index is not None:
                by_conn.setdefault(index, []).append(number)
        if by_conn:
            return [
                Step(ladder.level, index, policy.conn_ids[index], tuple(todo))
                for index, todo in sorted(by_conn.items())
            ]
        if not _level_over(policy, ladder, now):
            return []
        # Without an acknowledgement to wait for, a level someone received (or whose texts are still
        # unconfirmed on the last connection: no use waiting) ends the ladder; escalation is for a level
        # nobody received.
        ends = policy.ack_within is None and (
            any(ladder.reached(n) for n in numbers) or any(m["state"] == PENDING for m in _level(ladder))
        )
        if not ends and ladder.level + 1 < len(policy.levels):
            ladder.level += 1
            ladder.level_started = None
            continue
        ladder.finished = "no_ack" if policy.ack_within is not None else _final(ladder, numbers)
        return []


def _final(ladder: Ladder, numbers: Iterable[str]) -> str:
    """How a level ended: everyone reached, everyone reached or unconfirmed (``sent``), or not."""
    pending = {m["to"] for m in _level(ladder) if m["state"] == PENDING}
    if all(ladder.reached(n) for n in numbers):
        return "delivered"
    return "sent" if all(ladder.reached(n) or n in pending for n in numbers) else "undelivered"


def _level(ladder: Ladder) -> list[dict[str, Any]]:
    return [m for m in ladder.messages if m["level"] == ladder.level]


def _matters(policy: FallbackPolicy, ladder: Ladder, message: Mapping[str, Any]) -> bool:
    """Whether waiting for a pending text's outcome can change anything: a next connection would take
    over, or the next level would be paged, if it is not confirmed."""
    return message["conn_index"] + 1 < len(policy.conn_ids) or ladder.level + 1 < len(policy.levels)


def _level_over(policy: FallbackPolicy, ladder: Ladder, now: datetime) -> bool:
    """Nothing more will come of the current level: (no ack) nothing pending, or (ack) its time is up,
    or nobody of it can be reached any more."""
    numbers = policy.levels[ladder.level]
    pending = any(m["state"] == PENDING for m in _level(ladder))
    if policy.ack_within is None:
        return not any(_matters(policy, ladder, m) for m in _level(ladder) if m["state"] == PENDING)
    deadline = _ack_deadline(policy, ladder)
    if deadline is not None and now >= deadline:
        return True
    return not pending and not any(ladder.reached(n) for n in numbers)


def record_send(
    ladder: Ladder,
    step: Step,
    result: Mapping[str, Any],
    now: datetime,
    *,
    deliver_within: float | None,
    confirm: str = "delivered",
) -> None:
    """Note what one step's send returned (``SendResult.to_dict()``): accepted texts wait for
    confirmation, refused ones are decided at once."""
    deliver_by = _iso(now + timedelta(seconds=deliver_within)) if deliver_within is not None else None
    sent_at = _iso(now)
    seen: set[str] = set()
    for entry in result.get("accepted") or []:
        to = str(entry.get("to"))
        seen.add(to)
        ladder.messages.append(
            {
                "level": step.level,
                "to": to,
                "conn_index": step.conn_index,
                "conn_id": str(entry.get("conn_id") or step.conn_id),
                "message_id": entry.get("message_id"),
                "sent_at": sent_at,
                "deliver_by": deliver_by,
                "confirm": confirm,
                # without deliver_within an accepted text counts as reached
                "state": PENDING if deliver_by is not None else CONFIRMED,
                "status": None,
                "code": None,
            }
        )
    refused = [(str(r.get("to")), str(r.get("code"))) for r in result.get("rejected") or []]
    refused += [(str(n), "unsubscribed") for n in result.get("unsubscribed") or []]
    refused += [(str(n), "delivery_unknown") for n in result.get("in_doubt") or []]
    for to, code in refused:
        if to in seen:
            continue
        seen.add(to)
        # in doubt: the text may be on its way, with nothing to follow it by; it counts as no report
        state = NO_REPORT if code == "delivery_unknown" else REFUSED
        ladder.messages.append(
            {
                "level": step.level,
                "to": to,
                "conn_index": step.conn_index,
                "conn_id": step.conn_id,
                "message_id": None,
                "sent_at": sent_at,
                "deliver_by": deliver_by,
                "confirm": confirm,
                "state": state,
                "status": None,
                "code": code,
            }
        )
    for number in step.numbers:  # neither accepted nor refused (cannot happen with our hooks): not reached
        if number not in seen and not any(m["to"] == number for m in ladder.messages if m["level"] == step.level):
            ladder.messages.append(
                {
                    "level": step.level,
                    "to": number,
                    "conn_index": step.conn_index,
                    "conn_id": step.conn_id,
                    "message_id": None,
                    "sent_at": sent_at,
                    "deliver_by": deliver_by,
                    "confirm": confirm,
                    "state": NO_REPORT,
                    "status": None,
                    "code": "delivery_unknown",
                }
            )


def apply_reports(ladder: Ladder, reports: Iterable[Mapping[str, Any]], by_conn: bool = True) -> int:
    """Fold delivery reports (``DeliveryReport.to_dict()`` plus ``conn_id``) into the ladder; return how
    many texts changed state. A report decides only a pending text: a late ``delivered`` after the
    next connection took over is noted (``status``) but moves nothing back."""
    index = {(m["conn_id"], m["message_id"]): m for m in ladder.messages if m.get("message_id")}
    changed = 0
    for data in reports:
        report = DeliveryReport.from_dict(dict(data))
        m = index.get((str(data.get("conn_id")), report.message_id)) if by_conn else None
        if m is None:
            m = next((x for x in ladder.messages if x.get("message_id") == report.message_id), None)
        if m is None:
            continue
        m["status"] = report.status
        if m["state"] not in (PENDING, NO_REPORT):
            continue
        if report.status == m.get("confirm", "delivered") or report.status == "delivered":
            m["state"] = CONFIRMED
            changed += 1
        elif report.status in UNDELIVERED_STATUSES and m["state"] == PENDING:
            m["state"] = UNDELIVERED
            changed += 1
    return changed


def acknowledge(ladder: Ladder, message: Mapping[str, Any]) -> None:
    """An acknowledgement arrived (an inbound message's dict): the ladder ends."""
    ladder.acked = {
        "from_number": message.get("from_number"),
        "received_at": message.get("received_at"),
        "message_id": message.get("message_id"),
    }
    ladder.finished = "acked"


@dataclass(frozen=True)
class Wait:
    """What to wait for before the next decision.

    :param messages: pending texts to follow: ``{"conn_id", "message_id", "to", "deliver_by", "confirm"}``.
    :param wake_at: when a decision is due even if nothing is heard (the earliest ``deliver_by``, the
        acknowledgement deadline).
    :param ack_from: with ``ack_within``: the numbers whose reply ends the ladder (everyone paged so far).
    :param ack_since: the first page's time: replies before it never count.
    """

    messages: list[dict[str, Any]]
    wake_at: str
    ack_from: list[str] | None = None
    ack_since: str | None = None


def wait_for(policy: FallbackPolicy, ladder: Ladder) -> Wait | None:
    """What to wait for now, or None when the ladder is finished."""
    if ladder.finished:
        return None
    follow = [
        {k: m.get(k) for k in ("conn_id", "message_id", "to", "deliver_by", "confirm")}
        for m in ladder.messages
        if m["level"] == ladder.level and m["state"] == PENDING
    ]
    moments = [_at(m["deliver_by"]) for m in ladder.messages if m["level"] == ladder.level and m["state"] == PENDING]
    deadline = _ack_deadline(policy, ladder)
    if deadline is not None:
        moments.append(deadline)
    if not moments:
        return None
    ack = policy.ack_within is not None
    return Wait(
        [f for f in follow if f["message_id"]],
        _iso(min(moments)),
        ladder.paged() if ack else None,
        ladder.first_sent() if ack else None,
    )


def summary(policy: FallbackPolicy, ladder: Ladder) -> dict[str, Any]:
    """The outcome for XCom: how it ended, who acknowledged, who was reached (and through which
    connection), who was not, and every text sent, in order."""
    reached: dict[str, str] = {}
    unconfirmed: dict[str, str] = {}
    for m in ladder.messages:
        if m["state"] == CONFIRMED:
            reached.setdefault(m["to"], m["conn_id"])
        elif m["state"] == PENDING:
            unconfirmed.setdefault(m["to"], m["conn_id"])
    everyone = dict.fromkeys(n for level in policy.levels[: ladder.level + 1] for n in level)
    return {
        "status": ladder.finished or "waiting",
        "level": ladder.level,
        "acked_by": (ladder.acked or {}).get("from_number"),
        "reached": reached,
        "unconfirmed": {n: c for n, c in unconfirmed.items() if n not in reached},
        "not_reached": [n for n in everyone if n not in reached and n not in unconfirmed],
        "texts": [
            {k: m.get(k) for k in ("level", "to", "conn_id", "message_id", "sent_at", "state", "status", "code")}
            for m in ladder.messages
        ],
    }


def advance(
    policy: FallbackPolicy,
    ladder: Ladder,
    send: Callable[[Step], tuple[Mapping[str, Any], str]],
    *,
    clock: Callable[[], datetime],
) -> Wait | None:
    """Send every step due (``send(step) -> (SendResult.to_dict(), confirming status)``), again while
    refusals move recipients on at once; return what to wait for next, or None when the ladder ended."""
    while True:
        now = clock()
        steps = due_sends(policy, ladder, now)
        if not steps:
            break
        for step in steps:
            result, confirm = send(step)
            # a text's deliver_within starts once it was sent, not when its step fell due: building the
            # hook, reading the ledger and the request itself take time
            record_send(ladder, step, result, clock(), deliver_within=policy.deliver_within, confirm=confirm)
    wait = wait_for(policy, ladder)
    if wait is None and not ladder.finished:  # nothing pending and nothing to wait for (cannot happen)
        ladder.finished = _final(ladder, policy.levels[ladder.level])
    return wait
