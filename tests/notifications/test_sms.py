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
