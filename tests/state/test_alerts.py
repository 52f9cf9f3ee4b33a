"""Alert groups (``state.alerts``): one first alert per window, the hourly budget, claims under races, bounds."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_sms.state.alerts import PREFIX, AlertGroups, hashed
from airflow_provider_sms.state.variables import MemoryKeys

T0 = datetime(2030, 1, 1, 2, 0, tzinfo=timezone.utc)
WINDOW = timedelta(minutes=10)
PHONE = "+61400000001"


class SlowKeys(MemoryKeys):
    """A shared store whose calls yield the GIL, so racing threads interleave between write and list."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def set(self, key: str, value: str) -> None:
        threading.Event().wait(0.001)
        with self.lock:
            super().set(key, value)

    def keys(self, prefix: str) -> list[str]:
        threading.Event().wait(0.001)
        with self.lock:
            return super().keys(prefix)

    def delete(self, key: str) -> None:
        with self.lock:
            super().delete(key)


def race(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads released together; their results in order."""
    barrier, results = threading.Barrier(count), [None] * count

    def run(i: int) -> None:
        barrier.wait()
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_the_first_alert_of_a_key_opens_its_window_and_later_ones_join_it() -> None:
    groups = AlertGroups(MemoryKeys())
    first = groups.open_window("k1", "d.t", T0, WINDOW)
    later = groups.open_window("k1", "d.t", T0 + timedelta(minutes=9), WINDOW)
    other_key = groups.open_window("k2", "d.u", T0 + timedelta(minutes=1), WINDOW)
    after = groups.open_window("k1", "d.t", T0 + timedelta(minutes=10, seconds=1), WINDOW)
    assert first[0] and not later[0] and other_key[0] and after[0]
    assert later[1:] == first[1:]  # joined the same window
    assert after[1] > first[2]  # a new window once the first closed


def test_concurrent_alerts_for_one_key_open_one_window() -> None:
    for _ in range(5):
        groups = AlertGroups(SlowKeys())
        outcomes = race(8, lambda i, groups=groups: groups.open_window("k", "d.t", T0, WINDOW)[0])
        assert outcomes.count(True) == 1


def test_the_hourly_budget_is_never_exceeded_by_racing_senders() -> None:
    store = SlowKeys()
    groups = AlertGroups(store)
    won = race(25, lambda i: groups.take_slot(PHONE, T0 + timedelta(milliseconds=i), 10))
    assert 1 <= won.count(True) <= 10
    live = store.keys(f"{PREFIX}s.{hashed(PHONE)}.")
    assert len(live) == won.count(True)  # losers leave no key
    later = [groups.take_slot(PHONE, T0 + timedelta(minutes=1, seconds=i), 10) for i in range(20)]
    assert won.count(True) + later.count(True) == 10  # one-by-one senders fill exactly the rest
    assert groups.slots_free_at(PHONE, T0 + timedelta(minutes=5), 10) <= T0 + timedelta(hours=1, minutes=1)
    assert groups.take_slot(PHONE, T0 + timedelta(hours=1, minutes=2), 10)  # the hour moved on


@pytest.mark.parametrize("limit", [1, 2, 10])
def test_alerts_sent_at_once_leave_the_digest_a_text_of_the_hour(limit: int) -> None:
    groups = AlertGroups(MemoryKeys())
    record = {"conn_id": "c", "summary": "boom"}
    sent = 0
    for i in range(limit + 3):
        route = groups.route(
            key=f"d.t{i}",
            numbers=[PHONE],
            quiet_until={},
            now=T0 + timedelta(seconds=i),
            window=WINDOW,
            max_per_hour=limit,
            critical=False,
            record=record,
        )
        sent += len(route.now)
    assert sent == max(limit - 1, 1)
    closed = T0 + WINDOW + timedelta(seconds=limit + 3)
    (r,) = groups.due(closed)
    digest = groups.claim_digest(r, closed)
    assert digest is not None and digest.alerts == limit + 3 - sent
    assert groups.take_slot(PHONE, T0 + WINDOW, limit, kind="digest") == (limit > 1)


def test_a_digest_is_claimed_once_and_its_items_go_with_it() -> None:
    store = SlowKeys()
    groups = AlertGroups(store)
    for i in range(3):
        groups.hold(PHONE, "d.t", due=T0 + WINDOW, now=T0 + timedelta(seconds=i), flag="f", record={"summary": f"#{i}"})
    now = T0 + WINDOW
    digests = [d for d in race(4, lambda i: groups.claim_digest(hashed(PHONE), now)) if d is not None]
    assert len(digests) == 1
    (digest,) = digests
    assert digest.number == PHONE and digest.entries[0].count == 3 and digest.entries[0].last == "#2"
    groups.finish_digest(digest, now, sent=True)
    assert groups.held() == [] and groups.claim_digest(hashed(PHONE), now) is None
    assert store.keys(f"{PREFIX}a.{hashed('d.t')}.{hashed(PHONE)}.")  # the phone was told: it gets RESOLVED


def test_a_key_is_resolved_once_by_racing_success_callbacks() -> None:
    groups = AlertGroups(SlowKeys())
    groups.alerted("d.t", [PHONE], T0, {"conn_id": "c"})
    now = T0 + timedelta(minutes=3)

    def resolve(i: int) -> Any:
        resolution = groups.begin_resolution("d.t", [PHONE], now, None)
        if resolution is not None:
            groups.finish_resolution(resolution)
        return resolution

    done = [r for r in race(6, resolve) if r is not None]
    assert len(done) == 1 and [n for n, _c, _s in done[0].now] == [PHONE]
    assert groups.begin_resolution("d.t", [PHONE], now, None) is None  # nothing left to resolve


def test_a_key_that_never_alerted_resolves_to_nothing_and_its_held_alerts_go() -> None:
    groups = AlertGroups(MemoryKeys())
    assert groups.begin_resolution("d.t", [PHONE], T0, 10) is None
    groups.hold(PHONE, "d.t", due=T0 + timedelta(hours=6), now=T0, flag="q", record={})  # held for the night
    resolution = groups.begin_resolution("d.t", [PHONE], T0 + timedelta(hours=1), 10)
    assert resolution is not None and resolution.now == [] and resolution.held_failures == 1
    groups.finish_resolution(resolution)
    assert groups.held() == []  # nobody hears of a failure that recovered overnight


def test_state_is_bounded_windows_budget_and_dead_claims_are_swept() -> None:
    store = MemoryKeys()
    groups = AlertGroups(store)
    for i in range(30):
        groups.open_window(f"k{i}", f"d.t{i}", T0, WINDOW)
        groups.take_slot(f"+6140000{i:04d}", T0, 10)
    store.set(f"{PREFIX}d.{hashed(PHONE)}.{int(T0.timestamp() * 1000):013d}.dead", "1")
    groups.alerted("d.t", [PHONE], T0, {})
    assert groups.sweep(T0 + timedelta(minutes=1)) == 0  # nothing stale yet
    assert groups.sweep(T0 + timedelta(hours=2)) == 61  # windows, budget keys, the dead claim
    assert groups.sweep(T0 + timedelta(days=8)) == 1  # an incident never resolved, after RETENTION
    assert store.keys(PREFIX) == []
