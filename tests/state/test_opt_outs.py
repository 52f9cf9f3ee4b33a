"""The opt-out register: its words and ordering rules, and every path that feeds or consults it, run for
real (the sandbox over loopback, the suite's Airflow metadata database through the ORM, the shared
inbox stream, the webhook recorder)."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sms.core.errors import SmsOptOutRegisterUnavailableError
from airflow_provider_sms.core.results import DeliveryReport, InboundMessage
from airflow_provider_sms.state import opt_outs
from airflow_provider_sms.state.opt_outs import (
    FEED,
    OPTED_IN,
    OPTED_OUT,
    SNAPSHOT,
    OptOut,
    OptOutRegister,
    digest,
    event_variables,
    opt_out_word,
)
from airflow_provider_sms.state.variables import MemoryKeys, VariableKeys
from tests.keystore import MemoryKeys as SharedMemoryKeys
from tests.payloads import CLOUDWARE_OK

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=timezone.utc)
ALICE, BOB, CAROL = "+61400000101", "+61400000102", "+61400000103"


# --- words ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["STOP", "stop", " Stop! ", "STOPALL", "Unsubscribe.", "cancel", "END", "quit", "\n«Stop»\n", "stop..."],
)
def test_opt_out_words_in_any_case_with_punctuation_around(text: str) -> None:
    assert opt_out_word(text) == "stop"


@pytest.mark.parametrize("text", ["START", "start", " Unstop ", "START!"])
def test_opt_in_words(text: str) -> None:
    assert opt_out_word(text) == "start"


@pytest.mark.parametrize(
    "text", ["", "yes", "don't stop", "stop please", "STOP 2", "stopped", "the end", "s t o p", None, "STOP ALL"]
)
def test_a_word_inside_a_longer_text_or_any_other_word_is_not_an_opt_out(text: str | None) -> None:
    assert opt_out_word(text) is None


# --- the register over a key store -----------------------------------------------------------------


def register() -> OptOutRegister:
    return OptOutRegister(MemoryKeys())


def test_add_check_remove_and_the_stored_value() -> None:
    reg = register()
    assert reg.add(ALICE, source="cli", by="ops", at=T0) is True
    assert reg.add("+61 400 000 101", source="cli", at=T0) is False  # the same number, normalized
    assert reg.opted_out([ALICE, BOB]) == {ALICE}
    store = reg.store
    assert isinstance(store, MemoryKeys)
    (event,) = store.keys(FEED)
    assert event.startswith(f"{FEED}{datetime.now(timezone.utc):%Y%m%d%H}.{digest(ALICE)}.o.")
    assert set(store.values) == {event, OPTED_OUT + digest(ALICE), SNAPSHOT, f"{SNAPSHOT}.{event.split('.')[1]}.1.0"}
    assert not any(ALICE.lstrip("+") in key for key in store.values)  # keys hold a hash, never the number
    entry = reg.get(ALICE)
    assert entry is not None
    assert (entry.number, entry.at, entry.source, entry.by) == (ALICE, T0, "cli", "ops")
    assert reg.remove(ALICE, source="cli", at=T0 + timedelta(minutes=1)) is True
    assert reg.opted_out([ALICE]) == set() and reg.get(ALICE) is None
    assert OptOutRegister(store).opted_out([ALICE]) == set()  # a new reader agrees
    assert reg.remove(BOB, source="cli") is False


def test_the_later_event_wins_whatever_order_they_arrive_in() -> None:
    reg = register()
    reg.remove(ALICE, source="reply:c", at=T0 + timedelta(minutes=5))  # START at 09:05 arrives first
    assert reg.add(ALICE, source="reply:c", at=T0) is False  # the STOP of 09:00, late: it stays opted in
    assert reg.opted_out([ALICE]) == set()
    assert reg.add(ALICE, source="reply:c", at=T0 + timedelta(minutes=6)) is True  # a newer STOP counts
    assert reg.remove(ALICE, source="reply:c", at=T0 + timedelta(minutes=5)) is False  # older START: ignored
    assert reg.opted_out([ALICE]) == {ALICE}
    reg.add(BOB, source="reply:c", at=T0)
    assert reg.remove(BOB, source="reply:c", at=T0) is False  # a tie: the opt-out stands
    assert reg.opted_out([BOB]) == {BOB}
    assert OptOutRegister(reg.store).opted_out([ALICE, BOB]) == {ALICE, BOB}


class Interleaved(MemoryKeys):
    """A store that runs ``rival`` once, right after the next read of a number's per-number keys: another
    process recording its event between this one's read and its write."""

    def __init__(self) -> None:
        super().__init__()
        self.rival: Any = None

    def get_many(self, keys: Any) -> dict[str, str]:
        found = super().get_many(keys)
        rival, self.rival = self.rival, None
        if rival is not None:
            rival()
        return found


@pytest.mark.parametrize("listing", [True, False], ids=["events", "per-number keys"])
def test_a_stop_and_a_start_racing_for_one_number_lose_neither(monkeypatch: pytest.MonkeyPatch, listing: bool) -> None:
    """A START of 09:02 reads the number (opted out at 09:00); before it writes, a STOP of 09:03 is
    recorded. Deleting the opt-out (as a read-change-write would) would lose that newer STOP."""
    store = Interleaved()
    ours, theirs = OptOutRegister(store), OptOutRegister(store)
    ours.add(ALICE, source="reply:c", at=T0)
    store.rival = lambda: theirs.add(ALICE, source="reply:c", at=T0 + timedelta(minutes=3))
    assert ours.remove(ALICE, source="reply:c", at=T0 + timedelta(minutes=2)) is True  # it saw the 09:00 STOP
    # and the other way round: a STOP of 09:05 reads, a START of 09:06 lands before its write
    ours.add(BOB, source="reply:c", at=T0)
    store.rival = lambda: theirs.remove(BOB, source="reply:c", at=T0 + timedelta(minutes=6))
    ours.add(BOB, source="reply:c", at=T0 + timedelta(minutes=5))
    if not listing:  # Airflow 3.0-3.2 in a task: the per-number keys are all a check can read
        monkeypatch.setattr(opt_outs, "keys_listable", lambda: False)
        monkeypatch.setattr(OptOutRegister, "_listable", lambda self: False)
    assert OptOutRegister(store).opted_out([ALICE, BOB]) == {ALICE}


def test_entries_lists_every_opt_out_newest_first_and_not_the_opt_ins() -> None:
    reg = register()
    reg.add(ALICE, source="cli", at=T0)
    reg.add(BOB, source="provider:cellcast_default", word="unsubscribed", at=T0 + timedelta(hours=1))
    reg.remove(CAROL, source="cli", at=T0)
    reg.add(CAROL, source="cli", at=T0 - timedelta(hours=1))  # older than her opt-in: not listed
    assert [(e.number, e.source) for e in reg.entries()] == [(BOB, "provider:cellcast_default"), (ALICE, "cli")]
    assert any(k.startswith(OPTED_IN) for k in reg.store.keys("sms_"))


def test_keys_that_are_not_ours_are_ignored_and_an_unreadable_per_number_value_still_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = MemoryKeys()
    store.set(f"{FEED}2026050109.not-a-digest.o.1", "{}")
    store.set(f"{FEED}2026050109.{digest(BOB)}.x.1", "{}")
    assert OptOutRegister(store).opted_out([ALICE, BOB]) == set()
    store.set(OPTED_OUT + digest(ALICE), "not json")  # by hand, where nothing can be listed
    monkeypatch.setattr(OptOutRegister, "_listable", lambda self: False)
    assert OptOutRegister(store).opted_out([ALICE, BOB]) == {ALICE}


def test_an_unreadable_register_fails_the_check_closed() -> None:
    class Down(SharedMemoryKeys):
        def get(self, key: str) -> str | None:
            raise ConnectionError("database unreachable")

        def get_many(self, keys: Any) -> dict[str, str]:
            raise ConnectionError("database unreachable")

        def keys(self, prefix: str) -> list[str]:
            raise ConnectionError("database unreachable")

    with pytest.raises(SmsOptOutRegisterUnavailableError) as caught:
        OptOutRegister(Down()).check([ALICE])
    assert caught.value.retryable and caught.value.code == "opt_out_register_unavailable"
    assert ALICE not in str(caught.value)


def test_with_no_metadata_database_the_check_says_so_once_and_consults_nothing(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    class NoTable(VariableKeys):
        def get_many(self, keys: Any) -> dict[str, str]:
            raise RuntimeError("no such table: variable")

    monkeypatch.setattr(opt_outs, "_told_no_database", type(opt_outs._told_no_database)())
    monkeypatch.setattr(OptOutRegister, "_no_database", lambda self: True)
    monkeypatch.setattr(opt_outs, "keys_listable", lambda: True)  # outside a task
    reg = OptOutRegister(NoTable())
    with caplog.at_level(logging.WARNING, logger=opt_outs.__name__):
        assert reg.check([ALICE]) is None
        assert reg.check([BOB]) is None
        assert opt_outs.note_inbound([msg("STOP")], "inbox", register=reg) == 0  # nothing to write to
    assert sum("not consulted" in r.message for r in caplog.records) == 1
    assert not any("could not record" in r.message for r in caplog.records)


class CountingKeys(VariableKeys):
    """Variables as a task sees them, counted: one call per ``get`` round trip, one per listed page."""

    def __init__(self) -> None:
        super().__init__()
        self.memory = MemoryKeys()
        self.calls = {"get": 0, "keys": 0}

    def get_many(self, keys: Any) -> dict[str, str]:
        wanted = list(keys)
        self.calls["get"] += len(wanted)
        return self.memory.get_many(wanted)

    def keys(self, prefix: str) -> list[str]:
        self.calls["keys"] += 1
        return self.memory.keys(prefix)

    def set(self, key: str, value: str) -> None:
        self.memory.set(key, value)

    def delete(self, key: str) -> None:
        self.memory.delete(key)


# --- the snapshot: a check reads it and the recent hours, not every event --------------------------


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class Recording(MemoryKeys):
    """Key store that records which prefixes were listed and which keys were read."""

    def __init__(self) -> None:
        super().__init__()
        self.listed: list[str] = []
        self.read: list[str] = []

    def keys(self, prefix: str) -> list[str]:
        self.listed.append(prefix)
        return super().keys(prefix)

    def get(self, key: str) -> str | None:
        self.read.append(key)
        return super().get(key)

    def get_many(self, keys: Any) -> dict[str, str]:
        wanted = list(keys)
        self.read += wanted
        return super().get_many(wanted)

    def forget(self) -> None:
        self.listed, self.read = [], []


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    ticking = Clock(T0 + timedelta(minutes=30))
    monkeypatch.setattr(opt_outs, "_now", ticking)
    return ticking


def test_a_check_reads_the_snapshot_and_lists_only_the_hours_around_it(clock: Clock) -> None:
    store = Recording()
    writer = OptOutRegister(store)
    numbers = [f"+614{i:08d}" for i in range(40)]
    for number in numbers:
        writer.add(number, source="import", at=T0)
    assert OptOutRegister(store).opted_out([*numbers[:3], ALICE]) == set(numbers[:3])
    assert store.listed == [FEED, f"{SNAPSHOT}."]  # no snapshot yet: every event once; one is written
    assert json.loads(store.values[SNAPSHOT])["hour"] == "2026050109"

    clock.now += timedelta(hours=1)  # 10:30: a new STOP, and a second writer's late event of 08:59
    writer.add(ALICE, source="reply:c")
    store.set(f"{FEED}2026050108.{digest(BOB)}.o.{opt_outs._micros(T0)}", OptOut(BOB, T0, "late").to_json())
    store.forget()
    assert OptOutRegister(store).opted_out([*numbers, ALICE, BOB, CAROL]) == {*numbers, ALICE, BOB}
    prefixes = [p.removeprefix(FEED) for p in store.listed]
    assert prefixes == ["2026050108.", "2026050109.", "2026050110.", "2026050111."]  # never all of them
    assert SNAPSHOT in store.read and f"{SNAPSHOT}.2026050109.1.0" in store.read


def test_a_stale_snapshot_is_replaced_and_old_ones_are_deleted(clock: Clock) -> None:
    store = MemoryKeys()
    reg = OptOutRegister(store)
    reg.add(ALICE, source="cli", at=T0)
    reg.opted_out([ALICE])
    first = f"{SNAPSHOT}.2026050109.1.0"
    assert first in store.values
    clock.now += timedelta(hours=1)
    OptOutRegister(store).opted_out([ALICE])
    assert json.loads(store.values[SNAPSHOT])["hour"] == "2026050109"  # an hour old: still good
    clock.now += timedelta(hours=2)
    reg.remove(ALICE, source="cli")
    OptOutRegister(store).opted_out([ALICE])
    assert json.loads(store.values[SNAPSHOT])["hour"] == "2026050112"
    assert first in store.values  # kept a while: a check that read the old pointer may still want it
    clock.now += timedelta(hours=50)
    assert OptOutRegister(store).opted_out([ALICE]) == set()
    assert [k for k in store.keys(SNAPSHOT) if k != SNAPSHOT] == [f"{SNAPSHOT}.2026050314.1.0"]


def test_many_events_since_the_snapshot_make_the_next_check_write_a_new_one(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(opt_outs, "REFRESH_EVENTS", 5)
    store = MemoryKeys()
    reg = OptOutRegister(store)
    reg.add(ALICE, source="cli")
    reg.opted_out([ALICE])
    numbers = [f"+614{i:08d}" for i in range(6)]
    for number in numbers:
        reg.add(number, source="import")
    assert json.loads(store.values[SNAPSHOT])["numbers"] == 1
    OptOutRegister(store).opted_out([ALICE])
    assert json.loads(store.values[SNAPSHOT])["numbers"] == 7


def test_an_import_saves_a_snapshot_split_in_shards(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(opt_outs, "SHARD_SIZE", 10)
    store = MemoryKeys()
    reg = OptOutRegister(store)
    numbers = [f"+614{i:08d}" for i in range(25)]
    for number in numbers:
        reg.add(number, source="import")
    reg.save_snapshot()
    assert json.loads(store.values[SNAPSHOT])["shards"] == 3
    shards = [opt_outs._unpack(store.values[f"{SNAPSHOT}.2026050109.3.{i}"]) or [] for i in range(3)]
    assert sorted(len(shard) for shard in shards) != [0, 0, 25] and sum(map(len, shards)) == 25
    assert OptOutRegister(store).opted_out(numbers) == set(numbers)


@pytest.mark.parametrize("damage", ["missing", "garbled", "pointer"])
def test_a_missing_or_damaged_snapshot_means_reading_every_event_and_writing_a_new_one(
    clock: Clock, damage: str
) -> None:
    store = Recording()
    reg = OptOutRegister(store)
    reg.add(ALICE, source="cli")
    reg.opted_out([ALICE])
    shard = f"{SNAPSHOT}.2026050109.1.0"
    if damage == "missing":
        store.delete(shard)
    elif damage == "garbled":
        store.set(shard, store.values[shard][:-8] + "AAAAAAA=")  # a record cut short
    else:
        store.set(SNAPSHOT, "{")
    store.forget()
    assert OptOutRegister(store).opted_out([ALICE]) == {ALICE}
    assert FEED in store.listed
    assert opt_outs._unpack(store.values[shard]) is not None


def test_an_older_snapshot_never_replaces_the_pointer_to_a_newer_one(clock: Clock) -> None:
    store = MemoryKeys()
    reg = OptOutRegister(store)
    reg.add(ALICE, source="cli")
    clock.now += timedelta(hours=5)
    reg.save_snapshot()
    clock.now -= timedelta(hours=5)  # a process whose clock is behind, or that stalled
    OptOutRegister(store).save_snapshot()
    assert json.loads(store.values[SNAPSHOT])["hour"] == "2026050114"
    assert f"{SNAPSHOT}.2026050109.1.0" in store.values  # written, and harmless


def test_a_snapshot_drops_the_times_of_old_events_and_newer_events_still_win(clock: Clock) -> None:
    store = MemoryKeys()
    reg = OptOutRegister(store)
    old = [f"+614{i:08d}" for i in range(1000, 2000)]
    for n, number in enumerate(old):
        reg.add(number, source="import", at=T0 - timedelta(days=30, seconds=n))
    reg.add(CAROL, source="reply:c", at=T0 - timedelta(days=1))
    clock.now += timedelta(hours=3)  # the events were written before the hours the next reader lists
    reg.save_snapshot()
    pointer = json.loads(store.values[SNAPSHOT])
    assert pointer["horizon"] == opt_outs._micros(clock.now - opt_outs.HORIZON)
    (shard,) = [v for k, v in store.values.items() if k.startswith(f"{SNAPSHOT}.")]
    entries = dict(opt_outs._unpack(shard) or [])
    assert entries[bytes.fromhex(digest(old[0]))] == 1  # opted out, no time: it is older than the horizon
    assert entries[bytes.fromhex(digest(CAROL))] >> 1 == opt_outs._micros(T0 - timedelta(days=1))
    assert len(shard) < 11 * len(entries)  # the times column is zeros: 8 random bytes a number remain
    reg.remove(old[0], source="reply:c")  # a START now beats the STOP whose time the snapshot dropped
    assert OptOutRegister(store).opted_out([*old[:2], CAROL]) == {old[1], CAROL}


@pytest.mark.parametrize(("stop_days_ago", "out"), [(25, False), (15, True)])
def test_an_event_arriving_weeks_late_is_placed_by_the_number_s_own_keys(
    clock: Clock, stop_days_ago: int, out: bool
) -> None:
    """ALICE opted out 30 days ago and back in 20 days ago, both older than the snapshot's horizon, which
    keeps only "opted in". A STOP from 25 (or 15) days ago lands now, written by a process that raced the
    START: the snapshot cannot order them, her own keys can."""
    store = Recording()
    reg = OptOutRegister(store)
    reg.add(ALICE, source="reply:c", at=T0 - timedelta(days=30))
    reg.remove(ALICE, source="reply:c", at=T0 - timedelta(days=20))
    clock.now += timedelta(hours=3)
    reg.save_snapshot()
    late = OptOut(ALICE, T0 - timedelta(days=stop_days_ago), "reply:c", "STOP")
    for key, value in event_variables(late).items():
        if key.startswith(FEED) or out:  # the racing writer had recorded only the event, or both keys
            store.set(key, value)
    store.forget()
    assert OptOutRegister(store).opted_out([ALICE, BOB]) == ({ALICE} if out else set())
    assert {OPTED_OUT + digest(ALICE), OPTED_IN + digest(ALICE)} <= set(store.read)  # asked for her alone


def test_old_events_written_in_the_last_hours_keep_their_times_in_a_snapshot(clock: Clock) -> None:
    """A STOP, START, STOP of a month ago, recorded just now (an import, a catch-up): the next reader lists
    them again on top of the snapshot, so the snapshot keeps their times to order them, and does not
    fall back on the number's own key, which a race between the two STOPs left at the older one."""
    store = MemoryKeys()
    reg = OptOutRegister(store)
    reg.add(ALICE, source="import", at=T0 - timedelta(days=30))
    reg.remove(ALICE, source="import", at=T0 - timedelta(days=29))
    reg.add(ALICE, source="import", at=T0 - timedelta(days=28))
    store.set(OPTED_OUT + digest(ALICE), OptOut(ALICE, T0 - timedelta(days=30), "import").to_json())
    assert reg.opted_out([ALICE]) == {ALICE}  # every event listed; the snapshot is written
    assert OptOutRegister(store).opted_out([ALICE]) == {ALICE}  # the snapshot and the same events again


def test_in_a_task_the_check_lists_recent_hours_and_on_airflow_3_0_it_asks_per_number(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(opt_outs, "in_task_runtime", lambda: True)
    monkeypatch.setattr(opt_outs, "keys_listable", lambda: True)
    store = CountingKeys()
    writer = OptOutRegister(store)
    writer.add(ALICE, source="reply:c", at=T0)
    writer.save_snapshot()
    store.calls = {"get": 0, "keys": 0}
    many = [*(f"+614{i:08d}" for i in range(1000, 1200)), ALICE]
    assert OptOutRegister(store).opted_out(many) == {ALICE}
    assert store.calls == {"get": 2, "keys": 3}  # the pointer, one shard; 08:00, 09:00 and 10:00 listed
    monkeypatch.setattr(opt_outs, "keys_listable", lambda: False)  # Airflow 3.0-3.2: no listing from a task
    assert OptOutRegister(store).opted_out(many) == {ALICE}
    assert store.calls == {"get": 2 + len(many) + 1, "keys": 3}  # each number's key, ALICE's opt-in key


def msg(text: str, sender: str = ALICE, at: datetime = T0, provider: str = "cloudware") -> InboundMessage:
    return InboundMessage(provider, f"m-{sender}-{text}-{at.timestamp()}", sender, None, text, at)


def test_note_inbound_records_stop_and_start_and_skips_what_is_not_a_number() -> None:
    reg = register()
    changed = opt_outs.note_inbound(
        [msg("Stop"), msg("STOP", sender="ACME"), msg("yes", sender=BOB), msg("quit", sender=CAROL)],
        "inbox",
        register=reg,
    )
    assert changed == 2 and reg.opted_out([ALICE, BOB, CAROL]) == {ALICE, CAROL}
    entry = reg.get(ALICE)
    assert entry is not None and (entry.source, entry.word, entry.at) == ("reply:inbox", "Stop", T0)
    assert opt_outs.note_inbound([msg("start", at=T0 + timedelta(seconds=1))], "inbox", register=reg) == 1
    assert reg.opted_out([ALICE]) == set()


def test_a_register_write_that_fails_is_logged_masked_and_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    class ReadOnly(SharedMemoryKeys):
        def set(self, key: str, value: str) -> None:
            raise ConnectionError("API server unreachable")

    with caplog.at_level(logging.WARNING):
        assert opt_outs.note_inbound([msg("STOP")], "inbox", register=OptOutRegister(ReadOnly())) == 0
        assert opt_outs.note_unsubscribed([BOB], "cellcast_default", register=OptOutRegister(ReadOnly())) == 0
    text = caplog.text
    assert "could not record" in text and ALICE not in text and BOB not in text and "+614*****101" in text


def test_note_reports_records_only_unsubscribed_reports() -> None:
    reg = register()
    reports = [
        DeliveryReport("clickatell", "m1", ALICE, "unsubscribed", "21", T0),
        DeliveryReport("clickatell", "m2", BOB, "delivered", "5", T0),
        DeliveryReport("cellcast", "m3", None, "unsubscribed"),
    ]
    assert opt_outs.note_reports(reports, "clickatell_default", register=reg) == 1
    entry = reg.get(ALICE)
    assert entry is not None and entry.source == "provider:clickatell_default" and entry.word == "21"


# --- real paths: the suite's metadata database, the sandbox, the stream, the webhook -----------------


@pytest.fixture
def orm_register(airflow_db: None) -> OptOutRegister:
    """The register in the suite's Airflow metadata database (SQLite, through the ORM); it starts empty
    (the suite empties it after every test)."""
    return OptOutRegister()


def apply_events(events: list[tuple[str, int]], barrier: Any) -> None:
    """One process's share of a number's STOPs and STARTs (minutes after ``T0``), released together with
    the other processes' shares."""
    reg = OptOutRegister()
    barrier.wait(60)
    for kind, minute in events:
        change = reg.add if kind == "stop" else reg.remove
        change(ALICE, source=f"reply:{kind}", at=T0 + timedelta(minutes=minute))


def test_processes_recording_stops_and_starts_for_one_number_at_once_keep_the_latest(
    orm_register: OptOutRegister,
) -> None:
    """Three processes on the metadata database record 24 interleaved STOPs and STARTs of one number at
    the same time, each in its own order: whichever lands last, the latest event decides."""
    import multiprocessing
    import random

    spawn = multiprocessing.get_context("spawn")
    for round_, last in enumerate(("stop", "start")):
        minutes = range(100 * round_, 100 * round_ + 24)  # this round's events are all later than the last's
        events = [("stop" if (m % 2 == 1) == (last == "stop") else "start", m) for m in minutes]
        random.Random(round_).shuffle(events)
        barrier = spawn.Barrier(3)
        processes = [spawn.Process(target=apply_events, args=(events[i::3], barrier)) for i in range(3)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(120)
            assert process.exitcode == 0
        assert orm_register.opted_out([ALICE]) == ({ALICE} if last == "stop" else set())
        latest = orm_register.states().get(digest(ALICE))
        assert latest is not None and latest.at == opt_outs._micros(T0 + timedelta(minutes=minutes[-1]))


def sent_to(sandbox: Any, phone: str) -> list[dict[str, Any]]:
    return [m for m in sandbox.store.all(phone=phone) if m["direction"] == "out"]


def test_a_send_skips_an_opted_out_number_with_no_request_for_it(
    orm_register: OptOutRegister, make_conn: Any, sandbox: Any
) -> None:
    from airflow_provider_sms.hooks import get_sms_hook

    make_conn("cw", "cloudware", host=sandbox.url)
    orm_register.add(BOB, source="cli", at=T0)
    result = get_sms_hook("cw").send_sms([ALICE, BOB], "The office is closed today")
    assert result.unsubscribed == [BOB] and [a["to"] for a in result.accepted] == [ALICE]
    assert result.requests == 1  # Cloudware takes one recipient a call: only Alice's went out
    assert sent_to(sandbox, BOB) == [] and len(sent_to(sandbox, ALICE)) == 1
    everyone = get_sms_hook("cw", respect_opt_out=False).send_sms([BOB], "On-call: the load failed")
    assert [a["to"] for a in everyone.accepted] == [BOB] and len(sent_to(sandbox, BOB)) == 1


def test_failover_never_sends_to_an_opted_out_number(
    orm_register: OptOutRegister, make_conn: Any, requests_mock: Any
) -> None:
    from airflow_provider_sms.core.delivery import send_with_failover
    from airflow_provider_sms.hooks import get_sms_hook

    make_conn("primary", "clickatell", host="https://primary.example")
    make_conn("backup", "cloudware", host="https://backup.example")
    primary = requests_mock.post("https://primary.example/messages", status_code=401, json={"error": "bad key"})
    backup = requests_mock.post("https://backup.example/v1/sms/send", json=CLOUDWARE_OK)
    orm_register.add(CAROL, source="reply:backup", at=T0)
    result = send_with_failover(
        [lambda: get_sms_hook("primary"), lambda: get_sms_hook("backup")], [ALICE, CAROL], "Your order shipped"
    )
    assert result.unsubscribed == [CAROL]
    assert [a["to"] for a in result.accepted] == [ALICE]
    for call in primary.request_history + backup.request_history:
        assert "400000103" not in call.text
    assert backup.call_count == 1


def test_the_operator_fails_retryable_before_any_request_when_the_register_is_down(
    make_conn: Any, requests_mock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_sms._compat import AirflowFailException
    from airflow_provider_sms.operators.send import SendSmsOperator

    make_conn("cw_down", "cloudware", host="https://cw.example")
    sent = requests_mock.post("https://cw.example/v1/sms/send", json=CLOUDWARE_OK)

    def down(self: OptOutRegister, numbers: Any) -> set[str]:
        raise ConnectionError("could not connect to server")

    monkeypatch.setattr(OptOutRegister, "opted_out", down)
    monkeypatch.setattr(OptOutRegister, "_no_database", lambda self: False)
    from airflow_provider_sms.core.errors import SmsError
    from airflow_provider_sms.hooks import get_sms_hook
    from tests.operators.test_send import FakeTI

    with pytest.raises(SmsOptOutRegisterUnavailableError) as caught:
        get_sms_hook("cw_down").send_sms([ALICE, BOB], "hi")
    assert [(r["to"], r["code"]) for r in caught.value.result.rejected] == [
        (ALICE, "opt_out_register_unavailable"),
        (BOB, "opt_out_register_unavailable"),
    ]
    operator = SendSmsOperator(task_id="notify", sms_conn_id="cw_down", to=[ALICE], message="hi")
    ti = FakeTI()
    with pytest.raises(SmsError, match="may be retried safely") as failed:
        operator.execute({"ti": ti})  # type: ignore[arg-type]
    assert not isinstance(failed.value, AirflowFailException)  # an ordinary error: Airflow retries it
    assert ti.pushed["return_value"]["rejected"][0]["code"] == "opt_out_register_unavailable"
    assert sent.call_count == 0
    staff = SendSmsOperator(
        task_id="page", sms_conn_id="cw_down", to=[ALICE], message="disk full", respect_opt_out=False
    )
    assert [a["to"] for a in staff.execute({"ti": FakeTI()})["accepted"]] == [ALICE]  # type: ignore[arg-type]
    assert sent.call_count == 1


def test_cellcast_unsubscribe_contacts_in_a_send_answer_join_the_register(
    orm_register: OptOutRegister, make_conn: Any, sandbox: Any
) -> None:
    from airflow_provider_sms.hooks import get_sms_hook

    make_conn("cc", "cellcast", host=sandbox.url)
    sandbox.store.settings.unsubscribed = {BOB}  # Cellcast's own list: it answers with unsubscribeContacts
    result = get_sms_hook("cc").send_sms([ALICE, BOB], "Sale starts today")
    assert result.unsubscribed == [BOB]
    entry = orm_register.get(BOB)
    assert entry is not None and entry.source == "provider:cc"
    again = get_sms_hook("cc").send_sms([ALICE, BOB], "Sale ends today")
    assert again.unsubscribed == [BOB] and len(sent_to(sandbox, BOB)) == 0


def test_a_stop_reply_seen_by_a_poll_joins_the_register_and_the_next_send_skips_it(
    orm_register: OptOutRegister, make_conn: Any, sandbox: Any
) -> None:
    from airflow_provider_sms.core.inbound import build_filter, poll_replies
    from airflow_provider_sms.hooks import get_sms_hook

    make_conn("cw_in", "cloudware", host=sandbox.url)
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    sandbox.store.add_message(direction="in", provider="cloudware", phone=BOB, text="Stop.", status="received")
    sandbox.store.add_message(direction="in", provider="cloudware", phone=ALICE, text="yes", status="received")
    hook = get_sms_hook("cw_in")
    scan = poll_replies(hook, build_filter(from_numbers=[ALICE], match=["yes"], since=since))
    assert scan.match is not None and scan.match.from_number == ALICE  # the wait itself is unchanged
    entry = orm_register.get(BOB)
    assert entry is not None and entry.source == "reply:cw_in" and entry.word == "Stop."
    result = get_sms_hook("cw_in").send_sms([ALICE, BOB], "Thanks!")
    assert result.unsubscribed == [BOB] and sent_to(sandbox, BOB) == []
    later = (datetime.now(timezone.utc) + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    sandbox.store.add_message(  # the STOP's second would be a tie, which the STOP wins
        direction="in", provider="cloudware", phone=BOB, text="START", status="received", ts=later
    )
    poll_replies(hook, build_filter(since=since))
    assert orm_register.opted_out([BOB]) == set()


def test_a_stop_reply_reaches_the_register_through_the_shared_stream(
    orm_register: OptOutRegister, make_conn: Any, sandbox: Any
) -> None:
    pytest.importorskip("airflow.triggers.shared_stream", reason="shared trigger streams need Airflow 3.3")
    from airflow_provider_sms.triggers.inbox import Inbox
    from tests.triggers.test_shared_inbox import Triggerer, run, waiter

    make_conn("inbox", "cloudware", host=sandbox.url, country_code="61")
    Inbox._open.clear()
    since = datetime.now(timezone.utc) - timedelta(seconds=1)

    async def scenario(triggerer: Triggerer) -> None:
        first = triggerer.add(waiter(ALICE, since=since, interval=1))
        await asyncio.sleep(0.3)
        sandbox.store.add_message(
            direction="in", provider="cloudware", phone=CAROL, text="UNSUBSCRIBE", status="received"
        )
        sandbox.store.add_message(direction="in", provider="cloudware", phone=ALICE, text="yes", status="received")
        await triggerer.until(lambda: bool(triggerer.events[first]))
        await triggerer.until(lambda: bool(orm_register.opted_out([CAROL])), timeout=5)

    run(scenario)
    entry = orm_register.get(CAROL)
    assert entry is not None and entry.source == "reply:inbox"


def test_a_polled_cellcast_reply_stop_report_joins_the_register(
    orm_register: OptOutRegister, make_conn: Any, sandbox: Any
) -> None:
    from airflow_provider_sms.core.reports import Tracked, poll
    from airflow_provider_sms.hooks import get_sms_hook

    make_conn("cc_reports", "cellcast", host=sandbox.url)
    sandbox.store.settings.delivery.update({"sent_after": 0, "final_after": 0})
    stopper = "+61400000913"  # the sandbox's number that is delivered, then replies STOP (replyStop)
    hook = get_sms_hook("cc_reports")
    result = hook.send_sms([stopper], "Your code is 1234")
    message_id = result.accepted[0]["message_id"]
    reports = poll(hook, Tracked("cellcast", {message_id: stopper}), {})
    assert reports[message_id].status == "unsubscribed"
    entry = orm_register.get(stopper)
    assert entry is not None and entry.source == "provider:cc_reports"


def test_a_webhook_stop_reply_joins_the_register_in_the_api_server(
    orm_register: OptOutRegister, make_conn: Any
) -> None:
    pytest.importorskip("airflow.models.asset", reason="the webhook plugin records asset events: Airflow 3")
    from airflow_provider_sms.webhooks.recorder import AssetRecorder

    now = datetime.now(timezone.utc).replace(microsecond=0)
    stop = InboundMessage("clickatell", "mo-1", BOB, None, " stop ", now)
    start = InboundMessage("clickatell", "mo-2", CAROL, None, "START", now)
    orm_register.add(CAROL, source="cli", at=now - timedelta(days=1))
    report = DeliveryReport("clickatell", "mt-1", ALICE, "unsubscribed", "21", now)
    AssetRecorder().record("ck_hooks", [stop, start], [report])  # no DAG uses these assets: still recorded
    assert orm_register.opted_out([ALICE, BOB, CAROL]) == {ALICE, BOB}
    entry = orm_register.get(BOB)
    assert entry is not None and entry.source == "reply:ck_hooks"


@pytest.mark.parametrize("listing", [False, True], ids=["per-key", "listing"])
def test_in_a_real_task_run_the_check_goes_through_airflow_and_skips_the_opted_out(
    orm_register: OptOutRegister, make_conn: Any, sandbox: Any, monkeypatch: pytest.MonkeyPatch, listing: bool
) -> None:
    """``dag.test()``: on Airflow 3 the task reaches Variables through the Task SDK and the execution API:
    on 3.3 it reads the snapshot and lists events, never a number's own key; where keys cannot be listed
    (3.0-3.2, simulated) it asks for each recipient's key. On 2.11, the ORM."""
    from airflow_provider_sms._compat import AIRFLOW_V_3
    from airflow_provider_sms.state import variables
    from tests.test_example_dags import load_dag, xcom_value

    make_conn("cloudware_default", "cloudware", host=sandbox.url)
    orm_register.add("+2348012345679", source="reply:cloudware_default", at=T0)
    if not listing:
        monkeypatch.setattr(opt_outs, "keys_listable", lambda: False)
    calls: list[tuple[str, bool, list[str]]] = []  # from here on: the run's own reads
    for name in ("get_many", "keys"):
        real = getattr(VariableKeys, name)

        def spy(self: VariableKeys, arg: Any, _real: Any = real, _name: str = name) -> Any:
            asked = [arg] if isinstance(arg, str) else list(arg)
            calls.append((_name, variables.in_task_runtime(), asked))
            return _real(self, asked[0] if isinstance(arg, str) else asked)

        monkeypatch.setattr(VariableKeys, name, spy)
    dag = load_dag("cloudware_queue")
    task = dag.get_task("queue_newsletter")
    task.fail_on_rejected = False
    run = dag.test()
    result = xcom_value(run, "queue_newsletter")
    assert result["unsubscribed"] == ["+2348012345679"]
    texted = {row["phone"] for row in sandbox.store.all(provider="cloudware") if row["direction"] == "out"}
    assert texted == {"+2348012345678", "+2348012345680"}
    asked = [(name, key) for name, sdk, keys in calls if sdk or not AIRFLOW_V_3 for key in keys]
    assert asked and (not AIRFLOW_V_3 or all(sdk for _n, sdk, _k in calls if _n == "keys"))
    if listing:  # the snapshot and the events; no number's own key
        assert {name for name, _key in asked} == {"get_many", "keys"}
        assert all(key.startswith((FEED, SNAPSHOT)) for _name, key in asked)
    else:  # each recipient's own key, and nothing listed
        assert {name for name, _key in asked} == {"get_many"}
        assert {key for _name, key in asked} >= {
            OPTED_OUT + digest("+2348012345678"),
            OPTED_OUT + digest("+2348012345679"),
        }


def test_a_register_failing_during_failover_keeps_what_the_primary_sent(
    make_conn: Any, requests_mock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_sms.core.delivery import send_with_failover
    from airflow_provider_sms.hooks import get_sms_hook
    from tests.payloads import CELLCAST_GATEWAY, cellcast_queued

    make_conn("cc_primary", "cellcast")
    make_conn("cw_backup", "cloudware", host="https://backup.example")
    requests_mock.post(CELLCAST_GATEWAY, json=cellcast_queued("400000101"))
    backup = requests_mock.post("https://backup.example/v1/sms/send", json=CLOUDWARE_OK)
    reads: list[int] = []

    def flaky(self: OptOutRegister, numbers: Any) -> set[str]:
        reads.append(1)
        if len(reads) > 1:
            raise ConnectionError("the database went away")
        return set()

    monkeypatch.setattr(OptOutRegister, "opted_out", flaky)
    monkeypatch.setattr(OptOutRegister, "_no_database", lambda self: False)
    british = "+447911123456"  # Cellcast serves Australia only: it fails over to Cloudware
    result = send_with_failover(
        [lambda: get_sms_hook("cc_primary"), lambda: get_sms_hook("cw_backup")], [ALICE, british], "hi"
    )
    assert [a["to"] for a in result.accepted] == [ALICE]
    assert [(r["to"], r["code"]) for r in result.rejected] == [(british, "opt_out_register_unavailable")]
    assert backup.call_count == 0 and result.retry_safe is False  # nothing resent to Alice by a retry


def test_a_plain_script_with_no_metadata_database_is_told_once_and_sends(sandbox: Any, tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    script = (
        "from airflow_provider_sms.hooks import get_sms_hook\n"
        "for text in ('first', 'second'):\n"
        "    print(get_sms_hook('cw').send_sms(['+61400000301'], text).summary())\n"
    )
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),  # never migrated: no metadata database
        "AIRFLOW_CONN_CW": json.dumps({"conn_type": "cloudware", "host": sandbox.url, "password": "t0ken-123"}),
    }
    env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    output = done.stdout + done.stderr
    assert output.count("opt-out register is not consulted") == 1
    assert output.count("1 accepted") == 2
    assert len(sent_to(sandbox, "+61400000301")) == 2
