"""The opt-out register: the numbers that replied STOP (or that a provider reported opted out), kept
as Airflow Variables so that every send, through any connection and from any Airflow process, skips them.

**Events are the record.** Each STOP or START is one Variable written once and never changed,
``sms_optfeed.<hour>.<digest>.<o|i>.<microseconds>``: the UTC hour it was written, a short hash of the
E.164 number, opted out or back in, and when the person did it; its value is JSON ``{"number", "at",
"source", "word", "by"}`` (where it came from: ``reply:<conn_id>``, ``provider:<conn_id>``, ``cli``,
``ui:<user>``...). A number's state is its latest event, an opt-out winning a tie, so a late STOP (a
delayed webhook, a poll reading back) cannot undo a newer START nor a late START a newer STOP, and two
processes recording a STOP and a START for one number at the same moment cannot lose either: nothing
is read, changed and written back, and nothing is deleted.

**Checking reads a snapshot plus the recent hours.** Listing every event through Airflow's execution
API costs about 10 us a key (100,000 keys: a second), so a check reads ``sms_optsnap`` (which hour it
was built in, how many shards, its horizon) and its shards ``sms_optsnap.<hour>.<shards>.<i>`` (each
number's digest and latest event, compressed), then lists only the events of the hours from the one
before the snapshot's to the one after now, and merges: the latest event wins, so reading an event
twice is harmless. The check that finds the snapshot two hours old, missing or unreadable (then it
lists every event, once), or followed by many events (an import), writes a new one, shards first;
snapshots are never changed in place, a snapshot is never replaced by an older one, and those two days
older than the newest are deleted. This relies on the processes' clocks agreeing within an hour, which
Airflow's own execution API tokens already require. A snapshot keeps the time of a number's latest
event only if it is newer than a week (``HORIZON``) or was written in the last hours (the next reader
lists it again and must order it), so that its bytes, which a task pays for, are mostly the digests.
An event written later, more than a week late, that contradicts an entry kept without a time is placed
by the number's own keys.

**Per number, for details and where nothing can be listed.** Each event also sets ``sms_optout.<digest>``
(the latest opt-out) or ``sms_optin.<digest>`` (the latest opt-back-in) to the same JSON: ``entries``
and ``get`` show those details, ``add``/``remove`` read them to skip an event already recorded, and a
task on Airflow 3.0-3.2, which cannot list Variable keys, decides by them (one lookup per recipient).
Two same-kind events racing can leave the older one there (the events stay right, so checks that list
do too); that is the only inexact path, said in the README.

A register that cannot be read raises ``SmsOptOutRegisterUnavailableError`` (fail closed); a process
with no Airflow metadata database at all (a plain script) is told once that the register is not
consulted (``check``). Writes from the paths that see replies and reports (``note_inbound``,
``note_reports``, ``note_unsubscribed``) never raise: a failed write is logged, with the number masked,
and waiting or sending goes on. Variables are the store because a task, a trigger and a callback (Task
SDK) and the API server, the CLI and Airflow 2.11 (ORM) can all reach them (``state.variables``). This
module is the only code that touches these keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import struct
import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow_provider_sms.core.errors import SmsOptOutRegisterUnavailableError, SmsValidationError
from airflow_provider_sms.core.inbound import OPT_IN_WORDS, OPT_OUT_WORDS, opt_out_word
from airflow_provider_sms.core.phone import mask_number, normalize_number
from airflow_provider_sms.state.variables import KeyStore, VariableKeys, in_task_runtime, keys_listable

if TYPE_CHECKING:
    from airflow_provider_sms.core.results import DeliveryReport, InboundMessage

__all__ = [
    "FEED",
    "KEY_PREFIXES",
    "OPTED_IN",
    "OPTED_OUT",
    "OPT_IN_WORDS",
    "OPT_OUT_WORDS",
    "SNAPSHOT",
    "Event",
    "OptOut",
    "OptOutRegister",
    "digest",
    "event_variables",
    "note_inbound",
    "note_reports",
    "note_unsubscribed",
    "opt_out_word",
]

log = logging.getLogger(__name__)

FEED = "sms_optfeed."
SNAPSHOT = "sms_optsnap"
OPTED_OUT = "sms_optout."
OPTED_IN = "sms_optin."
OUT, IN = "o", "i"
KEY_PREFIXES = (FEED, SNAPSHOT, OPTED_OUT, OPTED_IN)
"""Every Variable key of the register starts with one of these."""
# Numbers per snapshot shard (16 bytes each, stored in 11 to 20 characters: under a megabyte a shard).
SHARD_SIZE = 50_000
# The check that finds the snapshot this many hours old, or this many events listed on top of it,
# writes a new one.
REFRESH_HOURS = 2
REFRESH_EVENTS = 2_000
# A snapshot older than this is not worth listing the hours since: the check lists every event.
MAX_HOURS = 72
# A snapshot keeps the time of a number's latest event only if it is newer than this (older ones are
# stored as 0, which compresses away: about half the bytes a task must read).
HORIZON = timedelta(days=7)
# Snapshots this many hours older than the newest one are deleted.
KEEP_HOURS = 48
# In a task or trigger, how long one reading serves the later checks of the same register object (the
# groups of a personalized send and a failover's fallbacks share it).
LISTING_TTL = 30.0

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_HOUR_FORMAT = "%Y%m%d%H"
_KEY = re.compile(r"sms_optfeed\.([0-9]{10})\.([0-9a-f]{16})\.([oi])\.([0-9]{1,19})")

_told_no_database = threading.Event()


def digest(number: str) -> str:
    """The key part that names an E.164 number: 16 hex digits of its SHA-256."""
    return hashlib.sha256(number.encode("utf-8")).hexdigest()[:16]


def _now() -> datetime:
    return datetime.now(timezone.utc)  # to the microsecond: a correction made at once is later than the mistake


def _hour(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(_HOUR_FORMAT)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _moment(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _aware(moment: datetime | str | None) -> datetime:
    if moment is None:
        return _now()
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise SmsValidationError(f"an opt-out time must carry its time zone, not {moment.isoformat()}")
    return moment.astimezone(timezone.utc)


@dataclass(frozen=True)
class OptOut:
    """What one event records (the value of its Variables): the number, when, where from, the word, who."""

    number: str
    at: datetime
    source: str
    word: str | None = None
    by: str | None = None

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "at": self.at.isoformat(),
            "source": self.source,
            "word": self.word,
            "by": self.by,
        }

    @classmethod
    def from_json(cls, text: str) -> OptOut:
        data = json.loads(text)
        return cls(
            number=str(data["number"]),
            at=_aware(data["at"]),
            source=str(data.get("source") or "unknown"),
            word=data.get("word"),
            by=data.get("by"),
        )


def _read(text: str | None) -> OptOut | None:
    if text is None:
        return None
    try:
        return OptOut.from_json(text)
    except (ValueError, KeyError, TypeError):
        return None  # a value written by hand that is not ours


class Event(NamedTuple):
    """One STOP or START as its feed key names it, which is all a check needs to know."""

    digest: str
    kind: str  # OUT or IN
    at: int  # microseconds since 1970 (UTC): when the person did it

    def beats(self, other: Event | None) -> bool:
        """Whether this event decides the number's state over ``other``: later, or an opt-out in a tie."""
        return other is None or (self.at, self.kind == OUT) > (other.at, other.kind == OUT)

    @classmethod
    def from_key(cls, key: str) -> Event | None:
        found = _KEY.fullmatch(key)
        return cls(found[2], found[3], int(found[4])) if found else None


def _feed_key(event: Event, hour: str) -> str:
    return f"{FEED}{hour}.{event.digest}.{event.kind}.{event.at}"


class Reading:
    """Every number's latest event as read once, kept as the snapshot stores it: the digest's 8 bytes ->
    ``at << 1 | opted out``, so that 100,000 entries load without building an object each.

    A snapshot stores ``at`` as 0 for events older than its ``horizon``: a listed event newer than the
    horizon beats such an entry, one of the same kind changes nothing, and an older one of the other kind
    (a STOP or START arriving more than ``HORIZON`` late) cannot be decided here: its number is ``unsure``
    until ``OptOutRegister`` asks the number's own keys."""

    def __init__(self, horizon: int = 0) -> None:
        self.latest: dict[bytes, int] = {}
        self.horizon = horizon
        self.unsure: dict[str, Event] = {}  # digest -> the latest listed event that could not be placed
        self.recent: set[bytes] = set()  # numbers decided by an event the next reader lists again

    def __len__(self) -> int:
        return len(self.latest)

    def get(self, number_digest: str) -> Event | None:
        packed = self.latest.get(bytes.fromhex(number_digest))
        return None if packed is None else Event(number_digest, OUT if packed & 1 else IN, packed >> 1)

    def opted_out(self, number_digest: str) -> bool:
        return bool(self.latest.get(bytes.fromhex(number_digest), 0) & 1)

    def merge(self, event: Event, *, recent: bool = False) -> None:
        """Take a listed event into account; ``recent``: it was written in the last hour or this one."""
        current = self.get(event.digest)
        if current is not None and current.at == 0 and event.at < self.horizon:
            if current.kind != event.kind and event.beats(self.unsure.get(event.digest)):
                self.unsure[event.digest] = event
            return  # of the same kind, it changes nothing
        if event.beats(current):
            self.set(event, recent=recent)

    def set(self, event: Event, *, recent: bool = False) -> None:
        raw = bytes.fromhex(event.digest)
        self.latest[raw] = event.at << 1 | (event.kind == OUT)
        if recent:
            self.recent.add(raw)

    def out(self) -> list[str]:
        """The digests of every opted-out number."""
        return [raw.hex() for raw, packed in self.latest.items() if packed & 1]

    def entries(self, horizon: int) -> list[tuple[bytes, int]]:
        """What a snapshot built now stores: times older than ``horizon`` as 0, except for numbers decided
        by a recent event (the next reader lists that event again and must be able to order it against
        this entry)."""
        return [
            (raw, packed if packed >> 1 >= horizon or raw in self.recent else packed & 1)
            for raw, packed in self.latest.items()
        ]


def _pack(entries: Iterable[tuple[bytes, int]]) -> str:
    """Snapshot entries as stored: the sorted 8-byte digests, then each one's ``at << 1 | opted out`` as
    8 bytes, compressed, in base64. Column by column, the zeros of old entries compress away: about 11
    characters a number (the fewer bytes, the less Airflow has to encrypt, send, decrypt and scan for
    secrets when a task reads it)."""
    ordered = sorted(entries)
    raw = b"".join(d for d, _ in ordered) + struct.pack(f">{len(ordered)}Q", *(p for _, p in ordered))
    return base64.b64encode(zlib.compress(raw, 6)).decode("ascii")


def _unpack(value: str) -> list[tuple[bytes, int]] | None:
    """A stored shard's entries, or None when it is not one of ours or is damaged."""
    try:
        raw = zlib.decompress(base64.b64decode(value, validate=True))
    except (ValueError, zlib.error):
        return None
    count, rest = divmod(len(raw), 16)
    if rest:
        return None
    digests = [raw[i : i + 8] for i in range(0, 8 * count, 8)]
    return list(zip(digests, struct.unpack(f">{count}Q", raw[8 * count :]), strict=True))


class Snapshot(NamedTuple):
    """Where the newest snapshot is: the hour it was built in, how many shards it has, and before when
    (microseconds since 1970) it stores no event times."""

    hour: str
    shards: int
    horizon: int = 0

    def shard_key(self, index: int) -> str:
        return f"{SNAPSHOT}.{self.hour}.{self.shards}.{index}"


def _shard(number_digest: bytes, shards: int) -> int:
    return int.from_bytes(number_digest[:4], "big") % shards


def _hours(since: str, until: datetime) -> list[str] | None:
    """The hours from the one before ``since`` to the one after ``until``; None when that is more than
    ``MAX_HOURS`` or runs backwards (a snapshot from a clock ahead): then every event is listed."""
    try:
        start = datetime.strptime(since, _HOUR_FORMAT).replace(tzinfo=timezone.utc) - timedelta(hours=1)
    except ValueError:
        return None
    end = until.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    count = int((end - start) / timedelta(hours=1)) + 1
    if count < 1 or count > MAX_HOURS:
        return None
    return [_hour(start + timedelta(hours=n)) for n in range(count)]


def _hours_between(older: str, newer: str) -> float:
    return (datetime.strptime(newer, _HOUR_FORMAT) - datetime.strptime(older, _HOUR_FORMAT)) / timedelta(hours=1)


class OptOutRegister:
    """The register over a ``KeyStore`` (Airflow Variables by default, reached as this process may).

    :param store: where the keys live; ``state.variables.VariableKeys()`` when None.
    :param refresh: whether a check may write a new snapshot when it finds the one there stale (the
        UI page's reads pass False: a page view writes nothing).
    """

    def __init__(self, store: KeyStore | None = None, *, refresh: bool = True) -> None:
        self.store: KeyStore = store if store is not None else VariableKeys()
        self.refresh = refresh
        self._reading: tuple[float, Reading] | None = None

    # --- checking ------------------------------------------------------------------------------

    def opted_out(self, numbers: Iterable[str]) -> set[str]:
        """Which of ``numbers`` (E.164) are in the register.

        :raises Exception: whatever the store raises when it cannot be read (``check`` turns it into
            ``SmsOptOutRegisterUnavailableError``).
        """
        by_digest = {digest(n): n for n in dict.fromkeys(numbers)}
        if not by_digest:
            return set()
        if not self._listable():
            return {by_digest[d] for d in self._out_by_key(by_digest)}
        reading = self.states()
        return {number for d, number in by_digest.items() if reading.opted_out(d)}

    def _listable(self) -> bool:
        """Whether this process can list Variable keys (a task on Airflow 3.0-3.2 cannot)."""
        return not isinstance(self.store, VariableKeys) or keys_listable()

    def _out_by_key(self, digests: Iterable[str]) -> set[str]:
        """The opted-out ``digests`` by their per-number keys, for where nothing can be listed."""
        outs = self.store.get_many(OPTED_OUT + d for d in digests)
        if not outs:
            return set()
        ins = self.store.get_many(OPTED_IN + key[len(OPTED_OUT) :] for key in outs)
        found = set()
        for key, value in outs.items():
            number_digest = key[len(OPTED_OUT) :]
            current = _read(value)
            if current is None or _still_out(current, _read(ins.get(OPTED_IN + number_digest))):
                found.add(number_digest)  # an opt-out key whose value is unreadable still counts
        return found

    def states(self, *, fresh: bool = False) -> Reading:
        """Every number's latest event, by digest: the snapshot plus the events listed since; a stale
        snapshot is replaced. In a task or trigger, where each read is a round trip to the supervisor,
        one reading serves this object's checks for ``LISTING_TTL`` seconds (the groups of one send and
        its failover) unless ``fresh``; elsewhere every call reads."""
        now = time.monotonic()
        if not fresh and self._reading is not None and now - self._reading[0] <= LISTING_TTL:
            return self._reading[1]
        reading, snapshot, listed = self._read_register()
        if self.refresh and reading and self._due(snapshot, listed):
            self._save(reading)
        self._reading = (now, reading) if self._reuses_readings() else None
        return reading

    def _reuses_readings(self) -> bool:
        return isinstance(self.store, VariableKeys) and self.store.session is None and in_task_runtime()

    def _read_register(self) -> tuple[Reading, Snapshot | None, int]:
        snapshot = self._snapshot()
        reading = Reading(snapshot.horizon if snapshot is not None else 0)
        if snapshot is not None and not self._load(snapshot, reading):
            snapshot, reading = None, Reading()
        hours = _hours(snapshot.hour, _now()) if snapshot is not None else None
        if hours is None:
            snapshot, reading = None, Reading()  # nothing to build on: every event is listed
            keys: Iterable[str] = self.store.keys(FEED)
        else:
            keys = [key for hour in hours for key in self.store.keys(f"{FEED}{hour}.")]
        listed = 0
        recent = _hour(_now() - timedelta(hours=1))  # a snapshot saved now makes readers list from here
        for key in keys:
            event = Event.from_key(key)
            if event is None:
                continue  # not one of ours
            listed += 1
            reading.merge(event, recent=key[len(FEED) : len(FEED) + 10] >= recent)
        if reading.unsure:
            self._settle(reading)
        return reading, snapshot, listed

    def _settle(self, reading: Reading) -> None:
        """Place the events ``reading`` could not: each number's own keys hold the time of its latest
        opt-out and opt-back-in, which the snapshot had dropped."""
        unsure, reading.unsure = reading.unsure, {}
        keys = [prefix + d for d in unsure for prefix in (OPTED_OUT, OPTED_IN)]
        values = self.store.get_many(keys)
        for number_digest, event in unsure.items():
            best = event
            current = reading.get(number_digest)
            if current is not None and current.at and current.beats(best):
                best = current  # a listed event newer than the horizon already decided it
            for kind, prefix in ((OUT, OPTED_OUT), (IN, OPTED_IN)):
                recorded = _read(values.get(prefix + number_digest))
                if recorded is not None:
                    candidate = Event(number_digest, kind, _micros(recorded.at))
                    best = candidate if candidate.beats(best) else best
            reading.set(best, recent=True)

    def _snapshot(self) -> Snapshot | None:
        text = self.store.get(SNAPSHOT)
        try:
            data = json.loads(text) if text else None
            snapshot = (
                Snapshot(str(data["hour"]), int(data["shards"]), int(data.get("horizon") or 0))
                if isinstance(data, dict)
                else None
            )
        except (ValueError, KeyError, TypeError):
            snapshot = None
        if snapshot is None or not snapshot.hour.isdigit() or len(snapshot.hour) != 10 or snapshot.shards < 1:
            return None
        return snapshot

    def _load(self, snapshot: Snapshot, reading: Reading) -> bool:
        """Read ``snapshot``'s shards into ``reading``; False when one is missing or damaged (then the
        snapshot is not used: every event is listed instead)."""
        shards = self.store.get_many(snapshot.shard_key(i) for i in range(snapshot.shards))
        if len(shards) != snapshot.shards:
            log.info("the opt-out register's snapshot of %s is incomplete; reading every event", snapshot.hour)
            return False
        for value in shards.values():
            entries = _unpack(value)
            if entries is None:
                log.warning("the opt-out register's snapshot of %s is damaged; reading every event", snapshot.hour)
                return False
            reading.latest.update(entries)
        return True

    @staticmethod
    def _due(snapshot: Snapshot | None, listed: int) -> bool:
        if snapshot is None or listed > REFRESH_EVENTS:
            return True
        return _hours_between(snapshot.hour, _hour(_now())) >= REFRESH_HOURS

    def _save(self, reading: Reading) -> None:
        """Write ``reading`` as the new snapshot: its shards, then (unless a newer one is there) the pointer
        to them, then delete snapshots ``KEEP_HOURS`` older. A failure is logged, never raised: the
        check has its answer, and the next one lists the events again."""
        now = _now()
        hour = _hour(now)
        horizon = max(_micros(now - HORIZON), reading.horizon)
        snapshot = Snapshot(hour, max(1, -(-len(reading) // SHARD_SIZE)), horizon)
        parts: list[list[tuple[bytes, int]]] = [[] for _ in range(snapshot.shards)]
        for entry in reading.entries(horizon):
            parts[_shard(entry[0], snapshot.shards)].append(entry)
        try:
            for index, part in enumerate(parts):
                self.store.set(snapshot.shard_key(index), _pack(part))
            current = self._snapshot()
            if current is None or current.hour <= hour:
                self.store.set(
                    SNAPSHOT,
                    json.dumps(
                        {
                            "hour": hour,
                            "shards": snapshot.shards,
                            "horizon": horizon,
                            "numbers": len(reading),
                            "at": now.isoformat(),
                        }
                    ),
                )
            for key in self.store.keys(f"{SNAPSHOT}."):
                built = key[len(SNAPSHOT) + 1 :].split(".")[0]
                if built.isdigit() and len(built) == 10 and _hours_between(built, hour) > KEEP_HOURS:
                    self.store.delete(key)
        except Exception as err:
            log.warning(
                "could not save the opt-out register's snapshot (%s); the next check that finds it stale tries again",
                _describe(err),
            )

    def save_snapshot(self) -> None:
        """Read the whole register now and write it as the snapshot (after a bulk import, say)."""
        self._reading = None
        reading, _snapshot, _listed = self._read_register()
        if reading:
            self._save(reading)

    def check(self, numbers: Iterable[str], *, conn_id: str | None = None) -> set[str] | None:
        """``opted_out`` for a send: None when this process has no Airflow metadata database at all (a
        plain script; said once per process), the opted-out numbers otherwise.

        :raises SmsOptOutRegisterUnavailableError: the register exists but cannot be read now.
        """
        try:
            return self.opted_out(numbers)
        except Exception as err:
            if self._no_database():
                if not _told_no_database.is_set():
                    _told_no_database.set()
                    log.warning(
                        "There is no Airflow metadata database here, so the SMS opt-out register is not "
                        "consulted for sends from this process (said once)"
                    )
                return None
            through = f" for a send through {conn_id!r}" if conn_id else ""
            raise SmsOptOutRegisterUnavailableError(
                f"the opt-out register could not be read{through} ({_describe(err)}); nothing was sent"
            ) from err

    def _no_database(self) -> bool:
        """Whether the register's store is the ORM of a process whose metadata database was never set up
        (no ``variable`` table): a plain script, not an outage."""
        if not isinstance(self.store, VariableKeys) or in_task_runtime():
            return False
        try:
            import sqlalchemy as sa
            from airflow import settings

            engine = getattr(settings, "engine", None)
            return engine is None or not sa.inspect(engine).has_table("variable")
        except ImportError:
            return True
        except Exception:  # the database cannot even be inspected: it is down, not absent
            return False

    # --- changing ------------------------------------------------------------------------------

    def _pair(self, number_digest: str) -> tuple[OptOut | None, OptOut | None]:
        """The latest opt-out and opt-back-in recorded for a number, by its per-number keys."""
        out_key, in_key = OPTED_OUT + number_digest, OPTED_IN + number_digest
        values = self.store.get_many([out_key, in_key])
        return _read(values.get(out_key)), _read(values.get(in_key))

    def _record(self, number_digest: str, kind: str, entry: OptOut) -> None:
        """Write one event: its feed key first (the record), then the number's per-number key."""
        for key, value in event_variables(entry, opted_out=kind == OUT).items():
            self.store.set(key, value)
        if self._reading is not None:
            self._reading[1].merge(Event(number_digest, kind, _micros(entry.at)))

    def add(
        self,
        number: str,
        *,
        source: str,
        word: str | None = None,
        by: str | None = None,
        at: datetime | str | None = None,
    ) -> bool:
        """Opt ``number`` out, as of ``at`` (now by default).

        Nothing is written when an opt-out as of ``at`` or later is already recorded, or an opt-back-in
        after ``at``. :return: True when the number was not opted out before.
        :raises SmsValidationError: ``number`` is not a phone number.
        """
        number = normalize_number(number)
        moment = _aware(at)
        number_digest = digest(number)
        current, back_in = self._pair(number_digest)
        if current is not None and current.at >= moment:
            return False
        if back_in is not None and back_in.at > moment:
            log.info("opt-out of %s as of %s ignored: it opted back in later", mask_number(number), moment.isoformat())
            return False
        self._record(number_digest, OUT, OptOut(number, moment, source, word, by))
        was_out = _still_out(current, back_in)
        if not was_out:
            log.info("%s opted out (%s)", mask_number(number), source)
        return not was_out

    def remove(
        self,
        number: str,
        *,
        source: str,
        by: str | None = None,
        at: datetime | str | None = None,
        word: str | None = None,
    ) -> bool:
        """Opt ``number`` back in, as of ``at`` (now by default); an opt-out recorded at or after ``at``
        stands. The opt-in is remembered, so an older STOP arriving later does not undo it.

        :return: True when the number was opted out before.
        :raises SmsValidationError: ``number`` is not a phone number.
        """
        number = normalize_number(number)
        moment = _aware(at)
        number_digest = digest(number)
        current, back_in = self._pair(number_digest)
        if current is not None and current.at >= moment:
            log.info("opt-in of %s as of %s ignored: it opted out later", mask_number(number), moment.isoformat())
            return False
        was_out = _still_out(current, back_in)
        if back_in is None or back_in.at < moment:
            self._record(number_digest, IN, OptOut(number, moment, source, word, by))
        if was_out:
            log.info("%s opted back in (%s)", mask_number(number), source)
        return was_out

    # --- reading entries -----------------------------------------------------------------------

    def get(self, number: str) -> OptOut | None:
        """The register's entry for ``number``, or None when it is not opted out."""
        number = normalize_number(number)
        number_digest = digest(number)
        if not self._listable():
            current, back_in = self._pair(number_digest)
            return current if _still_out(current, back_in) else None
        event = self.states(fresh=True).get(number_digest)
        if event is None or event.kind != OUT:
            return None
        return _read(self.store.get(OPTED_OUT + number_digest)) or OptOut(number, _moment(event.at), "unknown")

    def entries(self) -> list[OptOut]:
        """Every opted-out number, newest first. The details (number, source, word, who) are those its own
        key holds: the latest opt-out recorded there."""
        keys = [OPTED_OUT + number_digest for number_digest in self.states(fresh=True).out()]
        found: list[OptOut] = []
        for start in range(0, len(keys), 500):
            values = self.store.get_many(keys[start : start + 500])
            found += [entry for entry in map(_read, values.values()) if entry is not None]
        if len(found) < len(keys):
            log.warning("%d opted-out numbers have no readable details; checks still skip them", len(keys) - len(found))
        return sorted(found, key=lambda e: (e.at, e.number), reverse=True)


def event_variables(entry: OptOut, *, opted_out: bool = True, written: datetime | None = None) -> dict[str, str]:
    """The Variables one event writes, in the order they are written: its feed key (the record), then the
    number's own key. For bulk loads that insert the rows themselves (a migration, the benchmarks);
    ``written`` is when (the hour in the feed key), now by default."""
    number_digest = digest(entry.number)
    event = Event(number_digest, OUT if opted_out else IN, _micros(entry.at))
    value = entry.to_json()
    return {
        _feed_key(event, _hour(written or _now())): value,
        (OPTED_OUT if opted_out else OPTED_IN) + number_digest: value,
    }


def _still_out(current: OptOut | None, back_in: OptOut | None) -> bool:
    """Whether the per-number keys say opted out: an opt-out not followed by an opt-back-in."""
    return current is not None and (back_in is None or current.at >= back_in.at)


def _describe(err: BaseException) -> str:
    from airflow_provider_sms.state import describe_fault

    return describe_fault(err)


def _register(register: OptOutRegister | None) -> OptOutRegister:
    return register if register is not None else OptOutRegister()


def note_inbound(
    messages: Iterable[InboundMessage],
    conn_id: str,
    *,
    register: OptOutRegister | None = None,
    strict: bool = False,
) -> int:
    """Record the STOP and START replies among ``messages`` (received through ``conn_id``); return how
    many changed the register. A failed write is logged and the caller goes on, unless ``strict`` (the
    webhook recorder, whose transaction must then fail as a whole so the provider sends it again)."""
    changed = 0
    for message in messages:
        kind = opt_out_word(message.text)
        if kind is None:
            continue
        word = message.text.strip()[:40]
        try:
            register = _register(register)
            if kind == "stop":
                changed += register.add(
                    message.from_number, source=f"reply:{conn_id}", word=word, at=message.received_at
                )
            else:
                changed += register.remove(
                    message.from_number, source=f"reply:{conn_id}", word=word, at=message.received_at
                )
        except SmsValidationError:
            continue  # not a phone number (an alphanumeric sender): nobody to opt out
        except Exception as err:
            if strict:
                raise
            if register is not None and register._no_database():
                return changed  # a plain script: there is no register to write (``check`` said so)
            log.warning(
                "could not record the %s reply of %s in the opt-out register (%s); it is recorded when seen again",
                kind.upper(),
                mask_number(message.from_number),
                _describe(err),
            )
    return changed


def note_reports(
    reports: Iterable[DeliveryReport],
    conn_id: str,
    *,
    register: OptOutRegister | None = None,
    strict: bool = False,
) -> int:
    """Record the recipients of delivery reports with status ``unsubscribed`` (Cellcast ``replyStop``,
    Clickatell "stopped by user"); return how many were new. Never raises unless ``strict``."""
    return _note_provider(
        ((r.to, r.provider_status, r.at) for r in reports if r.status == "unsubscribed" and r.to),
        conn_id,
        register,
        strict=strict,
    )


def note_unsubscribed(numbers: Iterable[str], conn_id: str, *, register: OptOutRegister | None = None) -> int:
    """Record numbers a provider refused as opted out in its answer to a send (Cellcast
    ``unsubscribeContacts``); return how many were new. Never raises."""
    return _note_provider(((n, "unsubscribed", None) for n in numbers), conn_id, register)


def _note_provider(
    items: Iterable[tuple[str | None, str | None, datetime | None]],
    conn_id: str,
    register: OptOutRegister | None,
    *,
    strict: bool = False,
) -> int:
    changed = 0
    for number, word, at in items:
        if not number:
            continue
        try:
            register = _register(register)
            changed += register.add(number, source=f"provider:{conn_id}", word=word, at=at)
        except SmsValidationError:
            continue
        except Exception as err:
            if strict:
                raise
            if register is not None and register._no_database():
                return changed
            log.warning(
                "could not record the provider-reported opt-out of %s (%s)", mask_number(str(number)), _describe(err)
            )
    return changed
