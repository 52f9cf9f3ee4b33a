"""``SmsNotifier`` as an alerting tool: grouping, digests, the hourly cap, resolution, severity, quiet hours.

Time is simulated (``state.alerts.utcnow``); texts are counted where they arrive (the sandbox, or
requests-mock). The two-process test and the real DAG runs use Airflow's own Variables (the ORM on a
migrated SQLite metadata database, or the Task SDK inside ``dag.test()``).
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_sms.core.encoding import count_segments
from airflow_provider_sms.notifications.sms import SmsNotifier, send_due_digests
from airflow_provider_sms.state.alerts import PREFIX, AlertGroups
from airflow_provider_sms.state.variables import MemoryKeys
from tests.airflow_names import DAG

T0 = datetime(2030, 1, 1, 2, 0, tzinfo=timezone.utc)
ON_CALL = ["+61400000001", "+61400000002", "+61400000003"]
CLOUDWARE = "https://api.cloudware.chat/v1/sms/send"
STORM_DAG = DAG("storm", schedule=None)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr("airflow_provider_sms.state.alerts.utcnow", clock)
    return clock


def failure(task_id: str, exception: Exception | None = None, *, try_number: int = 1, **extra: Any) -> dict[str, Any]:
    ti = SimpleNamespace(task_id=task_id, try_number=try_number, state="failed", dag_id="storm", map_index=-1)
    return {
        "dag": STORM_DAG,
        "ti": ti,
        "task_instance": ti,
        "run_id": "manual__1",
        "exception": exception or ValueError("boom"),
        **extra,
    }


def success(task_id: str) -> dict[str, Any]:
    ti = SimpleNamespace(task_id=task_id, try_number=2, state="success", dag_id="storm", map_index=-1)
    return {"dag": STORM_DAG, "ti": ti, "task_instance": ti, "run_id": "manual__1"}


def texts(sandbox: Any) -> list[dict[str, Any]]:
    return [m for m in sandbox.store.all(provider="cellcast") if m["direction"] == "out"]


def most_in_any_hour(stamps: list[datetime]) -> int:
    stamps = sorted(stamps)
    return max((sum(1 for t in stamps if s <= t < s + timedelta(hours=1)) for s in stamps), default=0)


def test_a_storm_texts_each_phone_first_alerts_and_one_digest_within_max_per_hour(
    make_conn: Any, sandbox: Any, clock: Clock, store: MemoryKeys
) -> None:
    """100 failure callbacks across 20 task keys in 60 s, 3 phones, a 10-minute window, max_per_hour 10."""
    make_conn("cellcast_default", "cellcast", host=sandbox.url)
    notifier = SmsNotifier(sms_conn_id="cellcast_default", to=ON_CALL)
    sent_at: dict[str, list[datetime]] = {phone: [] for phone in ON_CALL}

    def count_new(seen: int) -> int:
        rows = texts(sandbox)
        for row in rows[seen:]:
            sent_at[row["phone"]].append(clock.now)
        return len(rows)

    seen = 0
    for i in range(100):
        clock.now = T0 + timedelta(seconds=0.6 * i)
        notifier(failure(f"load_{i % 20}", ValueError(f"boom {i}"), try_number=1 + i // 20))
        seen = count_new(seen)
    assert {phone: len(at) for phone, at in sent_at.items()} == {phone: 9 for phone in ON_CALL}  # 1 kept for the digest

    for minute in range(1, 12):  # the digest trigger's rounds, each minute of simulated time
        clock.now = T0 + timedelta(minutes=minute, seconds=30)
        send_due_digests(now=clock.now)
        seen = count_new(seen)
    per_phone = Counter(row["phone"] for row in texts(sandbox))
    assert per_phone == {phone: 10 for phone in ON_CALL}  # 9 first alerts + 1 digest, never more than 10 an hour
    digest = texts(sandbox)[-1]["text"]
    assert digest.startswith("Airflow: 91 alerts held on 20 keys since 02:00 UTC. ")
    assert count_segments(digest).segments == 1
    assert AlertGroups(store).held() == []  # the digest carried everything

    # the storm goes on after the windows closed: new first alerts, but the hour is full
    for i in range(40):
        clock.now = T0 + timedelta(minutes=30, seconds=i)
        notifier(failure(f"load_{i % 20}", ValueError(f"again {i}"), try_number=9))
        seen = count_new(seen)
    for minute in range(31, 75):
        clock.now = T0 + timedelta(minutes=minute, seconds=30)
        send_due_digests(now=clock.now)
        seen = count_new(seen)
    for phone, at in sent_at.items():
        assert most_in_any_hour(at) <= 10, phone  # max_per_hour is never exceeded
        assert len(at) >= 11  # what was held went out once the hour allowed
    assert AlertGroups(store).held() == []


def test_without_a_cap_a_storm_is_one_first_alert_per_key_and_one_digest(
    make_conn: Any, sandbox: Any, clock: Clock, store: MemoryKeys
) -> None:
    make_conn("cellcast_default", "cellcast", host=sandbox.url)
    notifier = SmsNotifier(sms_conn_id="cellcast_default", to=ON_CALL, max_per_hour=None)
    for i in range(100):
        clock.now = T0 + timedelta(seconds=0.6 * i)
        notifier(failure(f"load_{i % 20}", try_number=1 + i // 20))
    assert Counter(r["phone"] for r in texts(sandbox)) == {phone: 20 for phone in ON_CALL}
    for minute in range(1, 12):
        send_due_digests(now=T0 + timedelta(minutes=minute, seconds=30))
    assert Counter(r["phone"] for r in texts(sandbox)) == {phone: 21 for phone in ON_CALL}  # <= 20 + digests


def test_a_digest_goes_when_the_window_closes_with_no_further_alert(
    make_conn: Any, requests_mock: Any, clock: Clock, store: MemoryKeys
) -> None:
    make_conn("sms", "cloudware")
    requests_mock.post(CLOUDWARE, json={"status": "success", "data": {"id": "1"}})
    notifier = SmsNotifier(sms_conn_id="sms", to="+2348012345678")
    for i, minute in enumerate((14, 15, 17, 19)):
        clock.now = T0 + timedelta(minutes=minute)
        notifier(failure("load", ValueError(f"disk full {i}"), try_number=i + 1))
    assert len(requests_mock.request_history) == 1
    assert send_due_digests(now=T0 + timedelta(minutes=23, seconds=59)) == []  # the window is open until 02:24
    (sent,) = send_due_digests(now=T0 + timedelta(minutes=24))
    assert sent["alerts"] == 3 and sent["to"] == "+234*******678"  # masked
    text = requests_mock.request_history[-1].json()["message"]
    assert text == "storm.load: 3 more failures since 03:15, last: try 4 ValueError: disk full 3"  # Lagos time
    assert send_due_digests(now=T0 + timedelta(minutes=40)) == []  # once


def test_fail_fail_succeed_is_one_alert_and_one_resolved_and_succeed_alone_is_nothing(
    make_conn: Any, requests_mock: Any, clock: Clock, store: MemoryKeys
) -> None:
    make_conn("sms", "cloudware")
    requests_mock.post(CLOUDWARE, json={"status": "success", "data": {"id": "1"}})
    notifier = SmsNotifier(sms_conn_id="sms", to=["+2348012345678", "+2348012345679"])
    notifier(success("quiet_task"))
    assert requests_mock.call_count == 0  # never alerted: nothing to resolve
    notifier(failure("load"))
    clock.now += timedelta(minutes=2)
    notifier(failure("load", try_number=2))
    clock.now += timedelta(minutes=2)
    notifier(success("load"))
    notifier(success("load"))  # a success callback that runs twice
    messages = [r.json()["message"] for r in requests_mock.request_history]
    assert messages[:2] == ["Airflow FAILED: storm.load try 1 run manual__1: boom"] * 2
    assert (
        messages[2:]
        == ["RESOLVED storm.load: succeeded at 02:04 UTC after 1 more failure, failing since 02:00 UTC"] * 2
    )
    assert send_due_digests(now=T0 + timedelta(hours=1)) == []  # the held failure went with the resolution
    notifier(failure("load", try_number=3))  # a new incident alerts at once
    assert requests_mock.call_count == 6


def test_critical_alerts_skip_the_window_and_quiet_hours_normal_ones_wait_for_the_morning(
    make_conn: Any, requests_mock: Any, clock: Clock, store: MemoryKeys
) -> None:
    make_conn("sms", "cloudware")
    requests_mock.post(CLOUDWARE, json={"status": "success", "data": {"id": "1"}})
    lagos = "+2348012345678"  # 02:00 UTC is 03:00 in Lagos
    normal = SmsNotifier(sms_conn_id="sms", to=lagos, quiet_hours=("21:00", "08:00"))
    critical = SmsNotifier(sms_conn_id="sms", to=lagos, quiet_hours=("21:00", "08:00"), severity="critical")
    normal(failure("report"))
    clock.now += timedelta(minutes=1)
    normal(failure("report", try_number=2))
    assert requests_mock.call_count == 0  # held for the night
    critical(failure("payments"))
    clock.now += timedelta(minutes=1)
    critical(failure("payments", try_number=2))
    assert requests_mock.call_count == 2  # each critical alert at once, at night, in its window
    assert send_due_digests(now=T0 + timedelta(hours=4, minutes=59)) == []  # 07:59 in Lagos
    sent = send_due_digests(now=T0 + timedelta(hours=5))
    assert [s["alerts"] for s in sent] == [2]
    assert requests_mock.request_history[-1].json()["message"].startswith("storm.report: 2 failures since 03:00")


def test_a_templated_key_groups_alerts_of_several_tasks(
    make_conn: Any, requests_mock: Any, clock: Clock, store: MemoryKeys
) -> None:
    make_conn("sms", "cloudware")
    requests_mock.post(CLOUDWARE, json={"status": "success", "data": {"id": "1"}})
    shared = SmsNotifier(sms_conn_id="sms", to="+2348012345678", key="{{ dag.dag_id }}-pipeline")
    for task in ("extract", "transform", "load"):
        shared(failure(task))
    assert requests_mock.call_count == 1
    assert shared.key == "{{ dag.dag_id }}-pipeline"  # rendering happened on a copy
    assert len(send_due_digests(now=T0 + timedelta(minutes=10))) == 1
    assert requests_mock.request_history[-1].json()["message"].startswith("storm-pipeline: 2 more failures")


def test_without_grouping_every_callback_texts(make_conn: Any, requests_mock: Any, store: MemoryKeys) -> None:
    make_conn("sms", "cloudware")
    requests_mock.post(CLOUDWARE, json={"status": "success", "data": {"id": "1"}})
    plain = SmsNotifier(sms_conn_id="sms", to="+2348012345678", group_window=None)
    plain(failure("load", ValueError("one")))
    plain(failure("load", ValueError("two")))
    plain(success("load"))
    assert requests_mock.call_count == 3 and store.keys(PREFIX) == []


def test_bad_settings_fail_when_the_dag_is_parsed() -> None:
    with pytest.raises(ValueError, match="severity"):
        SmsNotifier(sms_conn_id="sms", to="+1", severity="urgent")
    with pytest.raises(ValueError, match="max_per_hour"):
        SmsNotifier(sms_conn_id="sms", to="+1", max_per_hour=0)
    assert SmsNotifier(sms_conn_id="sms", to="+1", group_window=90).group_window == timedelta(seconds=90)


# --- real processes and real DAG runs, on Airflow's own Variables ---------------------------------


@pytest.fixture
def variables(airflow_db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Alert groups in Airflow's Variables (the test session's SQLite database), cleared after."""
    from airflow_provider_sms.notifications import sms
    from airflow_provider_sms.state.variables import VariableKeys

    monkeypatch.setattr(sms, "alert_store", VariableKeys)
    AlertGroups(VariableKeys()).forget()
    yield
    AlertGroups(VariableKeys()).forget()


def fire(key: str, barrier: Any) -> None:
    """One process's failure callback for ``key``, released together with the other process's."""
    notifier = SmsNotifier(sms_conn_id="cellcast_default", to=ON_CALL[0], key=key)
    ti = SimpleNamespace(task_id="load", try_number=1, state="failed", dag_id="d", map_index=-1)
    context = {"dag": DAG("d", schedule=None), "ti": ti, "run_id": "manual__1"}
    barrier.wait(60)
    notifier({**context, "exception": RuntimeError(f"from process {multiprocessing.current_process().name}")})


def test_two_processes_alerting_one_key_at_once_send_one_text(make_conn: Any, sandbox: Any, variables: None) -> None:
    make_conn("cellcast_default", "cellcast", host=sandbox.url)
    spawn = multiprocessing.get_context("spawn")
    for round_ in range(3):
        barrier = spawn.Barrier(2)
        processes = [spawn.Process(target=fire, args=(f"race-{round_}", barrier)) for _ in range(2)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(120)
            assert process.exitcode == 0
        assert len(texts(sandbox)) == round_ + 1  # one text per key, whichever process sent it
    from airflow_provider_sms.state.variables import VariableKeys

    assert len(AlertGroups(VariableKeys()).held()) == 3  # the other process's alert waits for the digest


def test_a_real_dag_run_groups_its_failures_and_its_next_success_resolves(
    make_conn: Any, sandbox: Any, variables: None
) -> None:
    """``example_dags/sms_alerting.py`` under ``dag.test()``: three mapped loads fail under one key."""
    from airflow_provider_sms.state.variables import VariableKeys
    from tests.test_example_dags import load_dag

    make_conn("cellcast_default", "cellcast", host=sandbox.url)
    run = load_dag("sms_alerting").test(run_conf={"simulate_failure": True})
    assert run.state == "failed"
    (first,) = texts(sandbox)
    assert first["text"].startswith("Airflow FAILED: sms_alerting.nightly_load try 1 ")
    assert len(AlertGroups(VariableKeys()).held()) == 2  # the other two loads' failures

    (sent,) = send_due_digests(now=datetime.now(timezone.utc) + timedelta(minutes=11))
    assert sent["alerts"] == 2
    digest = texts(sandbox)[-1]["text"]
    assert digest.startswith("sms_alerting.nightly_load: 2 more failures since ")
    assert "RuntimeError" in digest and count_segments(digest).segments == 1

    assert load_dag("sms_alerting").test().state == "success"  # three successes, one recovery
    resolved = texts(sandbox)[2:]
    assert [m["text"].split(":")[0] for m in resolved] == ["RESOLVED sms_alerting.nightly_load"]
    assert load_dag("sms_alerting").test().state == "success"
    assert len(texts(sandbox)) == 3  # nothing more to resolve


def test_a_recovery_in_the_night_waits_for_the_morning_for_a_phone_in_quiet_hours(
    make_conn: Any, requests_mock: Any, clock: Clock, store: MemoryKeys
) -> None:
    make_conn("sms", "cloudware")
    requests_mock.post(CLOUDWARE, json={"status": "success", "data": {"id": "1"}})
    notifier = SmsNotifier(sms_conn_id="sms", to="+2348012345678", quiet_hours=("21:00", "08:00"))
    clock.now = datetime(2030, 1, 1, 18, 0, tzinfo=timezone.utc)  # 19:00 in Lagos
    notifier(failure("load"))
    assert requests_mock.call_count == 1
    clock.now = datetime(2030, 1, 1, 22, 0, tzinfo=timezone.utc)  # 23:00 in Lagos
    notifier(success("load"))
    assert requests_mock.call_count == 1  # nobody is woken for good news
    assert send_due_digests(now=datetime(2030, 1, 2, 6, 59, tzinfo=timezone.utc)) == []
    assert len(send_due_digests(now=datetime(2030, 1, 2, 7, 0, tzinfo=timezone.utc))) == 1
    assert requests_mock.last_request.json()["message"] == "RESOLVED storm.load at 23:00"  # Lagos time
