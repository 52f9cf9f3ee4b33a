"""Alert groups: which notifier alerts went out, which are held for a digest, and each phone's hourly budget.

``SmsNotifier`` groups alerts by a key (a DAG and task, by default): the first alert of a key in its
``group_window`` is texted at once, later ones are held and go out as one digest per phone when the
window closes (``notifications.sms.send_due_digests``, run by the digest trigger). A phone gets at most
``max_per_hour`` texts in any hour; what does not fit is held too. A key that alerted and later
succeeds gets one "RESOLVED" text, to the phones that were alerted about it.

Everything lives in Airflow Variables (``state.variables``), the one store a task, a callback, the
triggerer and the API server all reach; Airflow has no insert-if-absent, so every record is its own
key, written once and never updated (concurrent writers never overwrite each other), and the few
decisions that must be taken once are claims, *write, then list*, as in ``state.questions``. Keys hold
hashes (``k``: the alert key, ``r``: a phone number) and times (epoch milliseconds, zero-padded so
that keys sort by time); values, which Airflow encrypts with its Fernet key, hold what a digest needs
(the number, the connection, the alert key and a one-line summary of the failure):

- ``sms_alert.w.<k>.<start>.<end>.<claimant>``: a group window of a key. The claimant that lists no
  other open window of the key sends the first alert; the others join the window it opened.
- ``sms_alert.h.<r>.<due>.<k>.<at>.<flag>.<claimant>``: an alert held for one phone, due in a digest
  at ``due`` (the window's end, or the end of the phone's quiet hours). ``flag``: ``f`` a failure held
  by the window or the hourly cap, ``q`` one held for quiet hours, ``c`` a critical one held by the cap,
  ``r`` a "RESOLVED" held by the cap.
- ``sms_alert.s.<r>.<at>.<claimant>``: a text to a phone (its hourly budget). A sender writes its own
  key, lists the phone's keys of the last hour, and sends only when it sees no more than the limit
  (itself included): of any set of senders that all sent, the last to list saw every one of them, so
  the budget is never exceeded; two that race may both hold back, and their alerts wait in the digest.
  Alerts sent at once leave one text of the hour to the digest.
- ``sms_alert.a.<k>.<r>.<at>``: a phone was texted about a key (first alert or digest): who gets the
  "RESOLVED", and proof that a key alerted at all.
- ``sms_alert.e.<k>.<event>.<at>``: a failure (a hash of its task instance, try and text) already
  routed: the same callback running twice is one alert, in the digest's count too.
- ``sms_alert.r.<k>.<at>.<claimant>`` and ``sms_alert.d.<r>.<at>.<claimant>``: claims on resolving a
  key and on texting a phone's digest, removed when done.

A claimant that lists rivals yields unless it ranks first (earliest time, then claimant id); the first
waits a moment for the others to leave and lists again, and wins only once it lists no rival, so two
can never both win. Bounds: held alerts are removed by the digest that carries them or by the key's
resolution, budget keys after an hour, windows when they close, claims when done (after
``CLAIM_TTL`` when their process died), failures seen after ``EVENT_MEMORY``, and alert marks of a
key never resolved after ``RETENTION``; ``sweep`` (run with every round of digests) removes what no
writer came back for.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_sms.state.variables import KeyStore, VariableKeys

log = logging.getLogger(__name__)

PREFIX = "sms_alert."
WINDOW, HELD, SLOT, ALERTED, RESOLVING, DIGESTING, EVENT = "w", "h", "s", "a", "r", "d", "e"
HOUR_MS = 3_600_000
CLAIM_TTL = timedelta(minutes=2)  # a claim older than this belongs to a process that died
RETENTION = timedelta(days=7)  # alert marks of a key that never succeeded again
EVENT_MEMORY = timedelta(hours=6)  # how long a failure is known, so its callback running again is ignored
CLAIM_ROUNDS = 8  # how often the first-ranked claimant lists again while rivals leave
FAILURE, QUIET, CRITICAL, RESOLVED = "f", "q", "c", "r"


def utcnow() -> datetime:
    """Now, in UTC (tests simulate time by replacing this)."""
    return datetime.now(timezone.utc)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _stamp(ms: int) -> str:
    return f"{max(ms, 0):013d}"


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc)


def hashed(value: str) -> str:
    """The 16-hex-digit hash a key or a number is stored under (never the value itself)."""
    return hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def _claimant() -> str:
    return secrets.token_hex(4)


def _split(key: str, kind: str, fields: int) -> list[str] | None:
    """The fields of a ``sms_alert.<kind>.`` key, or None for a key of another shape."""
    head = f"{PREFIX}{kind}."
    if not key.startswith(head):
        return None
    parts = key[len(head) :].split(".")
    return parts if len(parts) == fields else None


def listable(store: KeyStore | None = None) -> bool:
    """Whether alert groups work here: a task on Airflow 3.0-3.2 cannot list Variable keys."""
    if store is not None and not isinstance(store, VariableKeys):
        return True
    from airflow_provider_sms.state.variables import keys_listable

    return keys_listable()


@dataclass(frozen=True)
class Held:
    """One alert held for one phone, as its key names it (its value is read only when needed)."""

    key: str
    r: str
    due: int
    k: str
    at: int
    flag: str

    @classmethod
    def parse(cls, key: str) -> Held | None:
        parts = _split(key, HELD, 6)
        if parts is None or not (parts[1].isdigit() and parts[3].isdigit()):
            return None
        return cls(key, parts[0], int(parts[1]), parts[2], int(parts[3]), parts[4])


@dataclass
class KeyDigest:
    """What a digest says about one alert key: how many were held since when, and the latest."""

    key: str
    count: int
    since: datetime
    last: str
    resolved: bool = False
    alerted_before: bool = False
    critical: bool = False


@dataclass
class Digest:
    """A phone's held alerts that are due, with what sending them needs."""

    r: str
    number: str
    conn_id: str
    sender: str | None
    default_tz: str | None
    max_per_hour: int | None
    entries: list[KeyDigest]
    zone: str | None = None
    items: list[Held] = field(default_factory=list)
    claim: str | None = None

    @property
    def alerts(self) -> int:
        return sum(e.count for e in self.entries if not e.resolved)


@dataclass
class Route:
    """Where one alert goes: ``now`` are the phones to text at once (each holds a text of its hour)."""

    first: bool
    window_start: datetime
    window_end: datetime
    now: list[str]
    held: list[str]


@dataclass
class Resolution:
    """A key that alerted and has recovered: whom to tell, and what happened meanwhile."""

    key: str
    k: str
    since: datetime
    held_failures: int
    now: list[tuple[str, str, str | None]]  # (number, conn_id, sender) with a text of their hour
    held: list[str]
    claim: str
    cleanup: list[str]


class AlertGroups:
    """The alert groups in a ``KeyStore`` (Airflow Variables unless a test gives another)."""

    def __init__(self, store: KeyStore | None = None, *, pause: Callable[[float], None] = time.sleep) -> None:
        self.store: KeyStore = store if store is not None else VariableKeys()
        self.pause = pause

    # --- claims ---------------------------------------------------------------------------------

    def _claim(self, prefix: str, own: str, value: str, live: Callable[[str], bool]) -> bool:
        """Write ``own`` under ``prefix`` and hold it only while no live rival is listed (see above)."""
        self.store.set(own, value)
        for attempt in range(CLAIM_ROUNDS):
            rivals = [key for key in self.store.keys(prefix) if key != own and live(key)]
            if not rivals:
                return True
            if min([*rivals, own], key=lambda key: key[len(prefix) :]) != own:
                break  # someone ranks first: it takes the claim
            self.pause(random.SystemRandom().uniform(0.01, 0.05) * (attempt + 1))
        self.store.delete(own)
        return False

    def _fresh_claim(self, now_ms: int, at_field: int, prefix: str) -> Callable[[str], bool]:
        def live(key: str) -> bool:
            stamp = key[len(prefix) :].split(".")[at_field]
            return stamp.isdigit() and int(stamp) > now_ms - int(CLAIM_TTL.total_seconds() * 1000)

        return live

    # --- windows --------------------------------------------------------------------------------

    def _open_windows(self, k: str, now_ms: int) -> list[tuple[int, int, str]]:
        found = []
        for key in self.store.keys(f"{PREFIX}{WINDOW}.{k}."):
            parts = _split(key, WINDOW, 4)
            if parts is None or not (parts[1].isdigit() and parts[2].isdigit()):
                continue
            start, end = int(parts[1]), int(parts[2])
            if end > now_ms:
                found.append((start, end, key))
            elif end < now_ms - 60_000:
                self.store.delete(key)  # closed: only the digest's items outlive a window
        return sorted(found)

    def open_window(self, k: str, key: str, now: datetime, window: timedelta) -> tuple[bool, int, int]:
        """``(first, start, end)``: whether this alert opens ``k``'s window (and sends), or joins one."""
        now_ms, length = _ms(now), int(window.total_seconds() * 1000)
        prefix = f"{PREFIX}{WINDOW}.{k}."
        for _ in range(3):
            current = self._open_windows(k, now_ms)
            if current:
                start, end, _key = current[0]
                return False, start, end
            own = f"{prefix}{_stamp(now_ms)}.{_stamp(now_ms + length)}.{_claimant()}"

            def live(other: str) -> bool:
                parts = _split(other, WINDOW, 4)
                return parts is not None and parts[2].isdigit() and int(parts[2]) > now_ms

            if self._claim(prefix, own, json.dumps({"key": key}), live):
                return True, now_ms, now_ms + length
        return False, now_ms, now_ms + length  # never settled: held, the digest carries it

    # --- hourly budget --------------------------------------------------------------------------

    def take_slot(self, number: str, now: datetime, limit: int | None, *, kind: str = "alert") -> bool:
        """Count a text to ``number`` against its hour; False (nothing counted) when ``limit`` is reached."""
        if limit is None:
            return True
        if limit <= 0:
            return False
        r, now_ms = hashed(number), _ms(now)
        prefix = f"{PREFIX}{SLOT}.{r}."
        own = f"{prefix}{_stamp(now_ms)}.{_claimant()}"
        self.store.set(own, kind)
        recent = 0
        for key in self.store.keys(prefix):
            stamp = key[len(prefix) :].split(".")[0]
            if not stamp.isdigit():
                continue
            if int(stamp) > now_ms - HOUR_MS:
                recent += 1
            elif int(stamp) < now_ms - HOUR_MS - 300_000:
                self.store.delete(key)
        if recent <= limit:
            return True
        self.store.delete(own)
        return False

    def slots_free_at(self, number: str, now: datetime, limit: int) -> datetime:
        """When ``number`` has a text of its hour again (now, if it has one)."""
        prefix = f"{PREFIX}{SLOT}.{hashed(number)}."
        now_ms = _ms(now)
        stamps = sorted(
            int(s)
            for s in (key[len(prefix) :].split(".")[0] for key in self.store.keys(prefix))
            if s.isdigit() and int(s) > now_ms - HOUR_MS
        )
        if len(stamps) < limit:
            return now
        return _moment(stamps[len(stamps) - limit] + HOUR_MS)

    # --- alerts ---------------------------------------------------------------------------------

    def route(
        self,
        *,
        key: str,
        numbers: Sequence[str],
        quiet_until: dict[str, datetime],
        now: datetime,
        window: timedelta,
        max_per_hour: int | None,
        critical: bool,
        record: dict[str, Any],
        event: str | None = None,
    ) -> Route:
        """Decide who is texted this alert now; hold it for everyone else (see the module's description).

        :param quiet_until: the phones in their quiet hours, and when those end.
        :param record: what a digest needs besides the number (``conn_id``, ``sender``, ``summary``,
            ``zone``...), stored with each held alert.
        :param event: names the failure (its task instance, try and text): a callback that runs again
            for the same failure is routed once (the send ledger keeps its text from going twice).
        """
        k = hashed(key)
        if event is not None:
            seen = f"{PREFIX}{EVENT}.{k}.{hashed(event)}."
            if self.store.keys(seen):
                return Route(False, now, now, [], [])
            self.store.set(f"{seen}{_stamp(_ms(now))}", "1")
        first, start, end = self.open_window(k, key, now, window)
        immediate_limit = None if max_per_hour is None else max(max_per_hour - 1, min(max_per_hour, 1))
        send_now, held = [], []
        for number in dict.fromkeys(numbers):
            quiet = quiet_until.get(number) if not critical else None
            if quiet is not None:
                self.hold(number, key, due=max(_moment(end), quiet), now=now, flag=QUIET, record=record)
                held.append(number)
            elif (first or critical) and self.take_slot(number, now, immediate_limit):
                send_now.append(number)
            else:
                self.hold(number, key, due=_moment(end), now=now, flag=CRITICAL if critical else FAILURE, record=record)
                held.append(number)
        return Route(first, _moment(start), _moment(end), send_now, held)

    def hold(self, number: str, key: str, *, due: datetime, now: datetime, flag: str, record: dict[str, Any]) -> str:
        """Keep an alert for ``number``'s next digest, due at ``due``."""
        name = (
            f"{PREFIX}{HELD}.{hashed(number)}.{_stamp(_ms(due))}.{hashed(key)}.{_stamp(_ms(now))}.{flag}.{_claimant()}"
        )
        self.store.set(name, json.dumps({**record, "to": number, "key": key}, separators=(",", ":")))
        return name

    def alerted(self, key: str, numbers: Iterable[str], now: datetime, record: dict[str, Any]) -> None:
        """Note that ``numbers`` were texted about ``key`` (they get its "RESOLVED")."""
        k = hashed(key)
        for number in numbers:
            value = json.dumps({**record, "to": number, "key": key}, separators=(",", ":"))
            self.store.set(f"{PREFIX}{ALERTED}.{k}.{hashed(number)}.{_stamp(_ms(now))}", value)

    # --- resolution -----------------------------------------------------------------------------

    def begin_resolution(
        self,
        key: str,
        numbers: Sequence[str],
        now: datetime,
        max_per_hour: int | None,
        quiet_until: Callable[[str], datetime | None] | None = None,
    ) -> Resolution | None:
        """Claim ``key``'s recovery; None when it never alerted or another process is resolving it.

        Held alerts of the key (for ``numbers`` and every alerted phone) are dropped by ``finish``:
        they are old news once it recovered. Phones never texted about it hear nothing; a phone in its
        quiet hours (``quiet_until``) gets the RESOLVED in its morning digest.
        """
        k, now_ms = hashed(key), _ms(now)
        marks_prefix = f"{PREFIX}{ALERTED}.{k}."
        if not self.store.keys(marks_prefix) and not self._held_for(k, {hashed(n) for n in numbers}):
            return None
        prefix = f"{PREFIX}{RESOLVING}.{k}."
        own = f"{prefix}{_stamp(now_ms)}.{_claimant()}"
        if not self._claim(prefix, own, "1", self._fresh_claim(now_ms, 0, prefix)):
            return None
        marks = self.store.keys(marks_prefix)  # listed again after the claim: a resolver before us removed them
        by_phone: dict[str, str] = {}
        since = now_ms
        for mark in marks:
            parts = _split(mark, ALERTED, 3)
            if parts is None or not parts[2].isdigit():
                continue
            since = min(since, int(parts[2]))
            if mark > by_phone.get(parts[1], ""):
                by_phone[parts[1]] = mark
        phones = set(by_phone) | {hashed(n) for n in numbers}
        held = self._held_for(k, phones)
        failures = [h for h in held if h.flag != RESOLVED]
        since = min([since, *(h.at for h in failures)])
        values = self.store.get_many(by_phone.values())
        immediate_limit = None if max_per_hour is None else max(max_per_hour - 1, min(max_per_hour, 1))
        send_now: list[tuple[str, str, str | None]] = []
        held_numbers: list[str] = []
        for mark in sorted(by_phone.values()):
            record = json.loads(values.get(mark) or "{}")
            number = record.get("to")
            if not number:
                continue
            quiet = quiet_until(number) if quiet_until is not None else None
            if quiet is not None:
                self.hold(number, key, due=quiet, now=now, flag=RESOLVED, record=record)
                held_numbers.append(number)
            elif self.take_slot(number, now, immediate_limit, kind="resolved"):
                send_now.append((number, record.get("conn_id") or "", record.get("sender")))
            else:
                self.hold(number, key, due=now, now=now, flag=RESOLVED, record=record)
                held_numbers.append(number)
        windows = list(self.store.keys(f"{PREFIX}{WINDOW}.{k}."))
        return Resolution(
            key=key,
            k=k,
            since=_moment(since),
            held_failures=len({(h.k, h.at) for h in failures}),
            now=send_now,
            held=held_numbers,
            claim=own,
            cleanup=[*(h.key for h in failures), *marks, *windows],
        )

    def finish_resolution(self, resolution: Resolution) -> None:
        """Forget the key's incident (held alerts, marks, windows), then release the claim: a resolver
        that claims after this finds no marks, and texts nobody."""
        for key in resolution.cleanup:
            self.store.delete(key)
        self.store.delete(resolution.claim)

    def _held_for(self, k: str, phones: Iterable[str]) -> list[Held]:
        found = []
        for r in phones:
            for key in self.store.keys(f"{PREFIX}{HELD}.{r}."):
                item = Held.parse(key)
                if item is not None and item.k == k:
                    found.append(item)
        return found

    # --- digests --------------------------------------------------------------------------------

    def held(self) -> list[Held]:
        """Every held alert, oldest due first."""
        items = [Held.parse(key) for key in self.store.keys(f"{PREFIX}{HELD}.")]
        return sorted((i for i in items if i is not None), key=lambda i: (i.due, i.at))

    def due(self, now: datetime) -> list[str]:
        """The phones (hashes) with a held alert due by ``now``."""
        now_ms = _ms(now)
        return sorted({item.r for item in self.held() if item.due <= now_ms})

    def next_due(self) -> datetime | None:
        """When the earliest held alert is due (None: nothing held)."""
        items = self.held()
        return _moment(min(i.due for i in items)) if items else None

    def claim_digest(self, r: str, now: datetime) -> Digest | None:
        """Claim phone ``r``'s digest and gather what is due (None: nothing due, or another sends it).

        The digest carries every held alert that is due, and with them the phone's other alerts held
        by a window or the cap (not those held for quiet hours): one text instead of one per window.
        """
        now_ms = _ms(now)
        prefix = f"{PREFIX}{DIGESTING}.{r}."
        own = f"{prefix}{_stamp(now_ms)}.{_claimant()}"
        if not self._claim(prefix, own, "1", self._fresh_claim(now_ms, 0, prefix)):
            return None
        items = [i for i in (Held.parse(k) for k in self.store.keys(f"{PREFIX}{HELD}.{r}.")) if i is not None]
        if not any(i.due <= now_ms for i in items):
            self.store.delete(own)
            return None
        items = [i for i in items if i.due <= now_ms or i.flag != QUIET]
        latest: dict[tuple[str, bool], Held] = {}
        for item in items:
            group = (item.k, item.flag == RESOLVED)
            if group not in latest or (item.at, item.key) > (latest[group].at, latest[group].key):
                latest[group] = item
        values = self.store.get_many(i.key for i in latest.values())
        marked = {
            parts[0]
            for parts in (_split(m, ALERTED, 3) for m in self.store.keys(f"{PREFIX}{ALERTED}."))
            if parts is not None and parts[1] == r
        }
        entries, newest = [], None
        for (k, resolved), item in sorted(latest.items(), key=lambda kv: kv[1].at):
            record = json.loads(values.get(item.key) or "{}")
            same = [i for i in items if i.k == k and (i.flag == RESOLVED) == resolved]
            entries.append(
                KeyDigest(
                    key=record.get("key", k),
                    count=len(same) if not resolved else 1,
                    since=_moment(min(i.at for i in same)),
                    last=record.get("summary", ""),
                    resolved=resolved,
                    alerted_before=k in marked,
                    critical=any(i.flag == CRITICAL for i in same),
                )
            )
            newest = record
        if newest is None or not newest.get("to"):
            self.store.delete(own)
            return None
        return Digest(
            r=r,
            number=newest["to"],
            conn_id=newest.get("conn_id") or "",
            sender=newest.get("sender"),
            default_tz=newest.get("default_tz"),
            max_per_hour=newest.get("max_per_hour"),
            entries=entries,
            items=items,
            claim=own,
        )

    def finish_digest(self, digest: Digest, now: datetime, *, sent: bool) -> None:
        """After the digest went out: mark its keys alerted for the phone, drop its items; either way
        release the claim (not sent: the items stay for the next round)."""
        if sent:
            for entry, k in {(e.key, hashed(e.key)) for e in digest.entries if not e.resolved}:
                self.store.set(
                    f"{PREFIX}{ALERTED}.{k}.{digest.r}.{_stamp(_ms(now))}",
                    json.dumps(
                        {"to": digest.number, "conn_id": digest.conn_id, "sender": digest.sender, "key": entry},
                        separators=(",", ":"),
                    ),
                )
            for item in digest.items:
                self.store.delete(item.key)
        if digest.claim:
            self.store.delete(digest.claim)

    # --- housekeeping ---------------------------------------------------------------------------

    def sweep(self, now: datetime) -> int:
        """Remove closed windows, budget keys older than an hour, dead claims and old alert marks."""
        now_ms, removed = _ms(now), 0
        claim_ttl = int(CLAIM_TTL.total_seconds() * 1000)
        for key in self.store.keys(PREFIX):
            kind, _, rest = key[len(PREFIX) :].partition(".")
            parts = rest.split(".")
            stale = False
            if kind == WINDOW and len(parts) == 4 and parts[2].isdigit():
                stale = int(parts[2]) < now_ms - 60_000
            elif kind == SLOT and len(parts) == 3 and parts[1].isdigit():
                stale = int(parts[1]) < now_ms - HOUR_MS - 300_000
            elif kind in (RESOLVING, DIGESTING) and len(parts) == 3 and parts[1].isdigit():
                stale = int(parts[1]) < now_ms - claim_ttl
            elif kind == EVENT and len(parts) == 3 and parts[2].isdigit():
                stale = int(parts[2]) < now_ms - int(EVENT_MEMORY.total_seconds() * 1000)
            elif kind == ALERTED and len(parts) == 3 and parts[2].isdigit():
                stale = int(parts[2]) < now_ms - int(RETENTION.total_seconds() * 1000)
            if stale:
                self.store.delete(key)
                removed += 1
        return removed

    def forget(self) -> int:
        """Remove every alert record (tests, and a user resetting the provider's alert state)."""
        keys = list(self.store.keys(PREFIX))
        for key in keys:
            self.store.delete(key)
        return len(keys)
