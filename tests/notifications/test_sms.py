from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from airflow_provider_sms.core.encoding import count_segments
from airflow_provider_sms.notifications.sms import SmsNotifier, fit_one_segment, send_sms_notification
from tests.airflow_names import DAG

CLOUDWARE = "https://api.cloudware.chat/v1/sms/send"


def context(**extra: Any) -> dict[str, Any]:
    ti = SimpleNamespace(task_id="load_orders", try_number=2, state="failed", dag_id="nightly_load", map_index=-1)
    return {
        "dag": DAG("nightly_load", schedule=None),
        "ti": ti,
        "task_instance": ti,
        "run_id": "manual__1",
        **extra,
    }


def test_default_message_names_dag_task_try_and_exception(make_conn: Any, requests_mock: Any) -> None:
    make_conn("sms", "cloudware")
    requests_mock.post(CLOUDWARE, json={"status": "success", "data": {"id": "1"}})
    SmsNotifier(sms_conn_id="sms", to="+2348012345678")(context(exception=ValueError("disk full")))
    text = requests_mock.request_history[0].json()["message"]
    assert text == "Airflow FAILED: nightly_load.load_orders try 2 run manual__1: disk full"


def test_default_message_is_cut_to_one_gsm_segment() -> None:
    text = fit_one_segment("Airflow FAILED: " + "x" * 300 + " — “quoted” 😀")
    info = count_segments(text)
    assert (info.encoding, info.segments) == ("GSM-7", 1)
    assert text.endswith("...")


def test_custom_message_is_rendered_from_the_callback_context(make_conn: Any, requests_mock: Any) -> None:
    make_conn("sms", "cloudware")
    requests_mock.post(CLOUDWARE, json={"status": "success", "data": {"id": "1"}})
    notifier = send_sms_notification(
        sms_conn_id="sms", to=["+2348012345678"], message="{{ dag.dag_id }} needs you ({{ ti.try_number }})"
    )
    notifier(context())
    assert requests_mock.request_history[0].json()["message"] == "nightly_load needs you (2)"


def test_default_deadline_message_names_dag_run_and_deadline_in_one_sms() -> None:
    from datetime import datetime, timezone

    from airflow_provider_sms.notifications.sms import default_message

    text = default_message(
        {
            "dag_run": {"dag_id": "nightly_load", "dag_run_id": "scheduled__2030-01-01T00:00:00+00:00"},
            "deadline": {"id": "d1", "deadline_time": datetime(2030, 1, 1, 2, 0, tzinfo=timezone.utc)},
        }
    )
    assert (
        text
        == "Airflow DEADLINE MISSED: nightly_load run scheduled__2030-01-01T00:00:00+00:00, due 2030-01-01 02:00 UTC"
    )
    assert count_segments(text).segments == 1


def test_default_hitl_message_gives_subject_reply_words_and_link_in_two_parts() -> None:
    from airflow_provider_sms.notifications.sms import default_message

    link = "https://airflow.example.com/dags/d/runs/r/tasks/approve/required_actions?map_index=-1"
    task = SimpleNamespace(
        subject="Publish the quarterly numbers for every region, with the long list of caveats? " * 3,
        options=["Approve", "Reject"],
        generate_link_to_ui_from_context=lambda context: link,
    )
    text = default_message({"task": task})
    assert text.endswith(f"... Reply APPROVE or REJECT: {link}")
    assert text.startswith("Publish the quarterly numbers")
    assert count_segments(text).segments <= 2
    no_link = SimpleNamespace(subject="Go?", options=["Yes", "No", "Later"], generate_link_to_ui_from_context=None)
    assert default_message({"task": no_link}) == "Go? Reply YES or NO or LATER"


def test_a_deadline_alert_texts_from_the_triggerer_without_blocking_its_loop(
    make_conn: Any, requests_mock: Any
) -> None:
    """Run the notifier the way Airflow runs an ``AsyncCallback``: through its own ``CallbackTrigger``."""
    import asyncio
    import threading

    import pytest

    callback_module = pytest.importorskip("airflow.triggers.callback", reason="Deadline Alerts need Airflow 3.1")

    make_conn("sms", "cloudware")
    senders = []

    def answer(request: Any, context: Any) -> dict:
        senders.append(threading.current_thread())
        return {"status": "success", "data": {"id": "1"}}

    requests_mock.post(CLOUDWARE, json=answer)
    trigger = callback_module.CallbackTrigger(
        callback_path="airflow_provider_sms.notifications.sms.SmsNotifier",
        callback_kwargs={
            "sms_conn_id": "sms",
            "to": ["+2348012345678"],
            "context": {
                "dag_run": {"dag_id": "nightly_load", "dag_run_id": "manual__1"},
                "deadline": {"id": "d1", "deadline_time": "2030-01-01T02:00:00+00:00"},
            },
        },
    )

    async def run() -> list[dict]:
        loop_thread = threading.current_thread()
        events = [event.payload async for event in trigger.run()]
        assert senders and all(thread is not loop_thread for thread in senders)
        return events

    events = asyncio.run(run())
    assert [str(e["state"]) for e in events][-1].lower().endswith("success")
    text = requests_mock.request_history[0].json()["message"]
    assert text == "Airflow DEADLINE MISSED: nightly_load run manual__1, due 2030-01-01T02:00"


def test_a_callback_that_runs_twice_for_one_failure_texts_once(make_conn: Any, requests_mock: Any, store: Any) -> None:
    from datetime import datetime, timedelta, timezone

    from tests.state.test_ledger import StateStoreAccessor

    alerts = store  # the alert groups (tests/notifications/conftest.py)

    make_conn("sms", "cloudware")
    requests_mock.post(CLOUDWARE, json={"status": "success", "data": {"id": "1"}})
    store = StateStoreAccessor()  # the failed task instance's task state store (Airflow 3.3)
    notifier = SmsNotifier(sms_conn_id="sms", to=["+2348012345678", "+2348012345679"])
    failure = context(exception=ValueError("disk full"), task_state_store=store)
    notifier(failure)
    notifier(failure)  # the same failure reported again (a second callback run)
    assert len(requests_mock.request_history) == 2  # one text to each of the two, not four
    notifier(context(exception=ValueError("another failure"), task_state_store=store))
    assert len(requests_mock.request_history) == 2  # another failure of the key waits for the digest
    from airflow_provider_sms.notifications.sms import send_due_digests
    from airflow_provider_sms.state.alerts import AlertGroups

    assert len({item.k for item in AlertGroups(alerts).held()}) == 1
    assert len(AlertGroups(alerts).held()) == 2  # one per recipient, once each (not twice for the repeat)
    plain = SmsNotifier(sms_conn_id="sms", to=["+2348012345678", "+2348012345679"], group_window=None)
    plain(context(exception=ValueError("a third failure"), task_state_store=store))
    plain(context(exception=ValueError("a third failure"), task_state_store=store))
    assert len(requests_mock.request_history) == 4  # without grouping, a different failure is a different text
    assert send_due_digests(alerts, now=datetime.now(timezone.utc) + timedelta(minutes=11))


def test_a_question_asked_again_by_a_retry_is_not_texted_twice(make_conn: Any, requests_mock: Any) -> None:
    from airflow_provider_sms.hooks import get_sms_hook
    from airflow_provider_sms.notifications.once import send_sms_once
    from tests.state.test_ledger import StateStoreAccessor

    make_conn("sms", "cloudware")
    requests_mock.post(CLOUDWARE, json={"status": "success", "data": {"id": "q1"}})
    store = StateStoreAccessor()
    hook = get_sms_hook("sms")
    first = send_sms_once(context(task_state_store=store), hook, ["+2348012345678"], "Deploy? (ref 4821)", key="q")
    again = send_sms_once(context(task_state_store=store), hook, ["+2348012345678"], "Deploy? (ref 1234)", key="q")
    assert len(requests_mock.request_history) == 1  # the retry's question (a new reference) is not sent
    assert [a["message_id"] for a in again.accepted] == [a["message_id"] for a in first.accepted] == ["q1"]
