"""Real runs in a real Airflow 3 (API server, scheduler, DAG processor, triggerer) against the sandbox.

What only a real deployment exercises: a Deadline Alert sent from the triggerer, an approval answered
by text and recorded through Airflow's human-in-the-loop API, a text after a UI answer, Airflow's own
ApprovalOperator texting its request through ``SmsNotifier``, a delivery wait deferred to the
triggerer, and a reply pushed by the sandbox's webhook into the API server's plugin that becomes an
asset event and starts the DAG scheduled on it. One Airflow serves the module; every run is triggered
up front so they progress together, then each test plays its part.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("airflow.providers.standard.operators.hitl", reason="human-in-the-loop needs Airflow 3.1")
pytest.importorskip("airflow.sdk.definitions.deadline", reason="Deadline Alerts need Airflow 3.1")

from demo.real_airflow import RealAirflow
from tests.conftest import EXAMPLE_DAGS
from tests.deadline import wait_for

APPROVER = "+61400000002"
RUNS = {
    "approve_by_text": ("sms_approval", None),
    "reject_by_text": ("sms_approval", None),
    "ui_then_text": ("sms_approval", None),
    "deadline": ("deadline_alert", {"work_seconds": 25}),
    "notifier": ("hitl_sms_notifier", None),
    "delivery": ("delivery_report", None),
}
WEBHOOK_SECRET = "e2e-webhook-secret-value"


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RealAirflow, Any, dict[str, str]]]:
    from airflow_provider_sms.sandbox.server import SandboxServer

    dags = tmp_path_factory.mktemp("dags")
    for name in ("sms_approval", "deadline_alert", "delivery_report", "reply_webhook"):
        (dags / f"{name}.py").symlink_to(EXAMPLE_DAGS / f"{name}.py")
    (dags / "hitl_sms_notifier.py").symlink_to(Path(__file__).parent.parent / "dags" / "hitl_sms_notifier.py")
    with SandboxServer() as sandbox:
        sandbox.store.settings.delivery.update({"sent_after": 1, "final_after": 2})
        conns = {
            f"{kind}_default": {
                "conn_type": kind,
                "host": sandbox.url,
                "password": "real-airflow-token",
                "extra": {"country_code": "61", "webhook_secret": WEBHOOK_SECRET},
            }
            for kind in ("cellcast", "cloudware")
        }
        real = RealAirflow(
            tmp_path_factory.mktemp("airflow"),
            dags,
            connections=conns,
            env={"AIRFLOW_VAR_REPORT_DEADLINE_SECONDS": "5"},
            scheduling=True,
        ).start()
        try:
            real.wait_until_ready([*{dag_id for dag_id, _ in RUNS.values()}, "reply_webhook"])
            runs = {name: real.trigger(dag_id, conf) for name, (dag_id, conf) in RUNS.items()}
            yield real, sandbox, runs
        finally:
            real.stop()


def texts_to(sandbox: Any, phone: str, since_seq: int = 0) -> list[dict[str, Any]]:
    return [m for m in sandbox.store.all(phone=phone) if m["direction"] == "out" and m["seq"] > since_seq]


def the_ask(sandbox: Any, run_id: str) -> dict[str, Any]:
    """The approval request texted for this run (its link names the run)."""
    return wait_for(
        lambda: next((m for m in texts_to(sandbox, APPROVER) if run_id in m["text"]), None), what="the question"
    )


def ref_of(ask: dict[str, Any]) -> str:
    """The question's reference, from its text: "... Reply APPROVE or REJECT (ref 4821): ..."."""
    return ask["text"].split("(ref ")[1][:4]


def reply(sandbox: Any, text: str) -> None:
    sandbox.store.add_message(direction="in", provider="cloudware", phone=APPROVER, text=text, status="received")


def test_an_approval_answered_by_text_is_recorded_and_the_run_continues(airflow: Any) -> None:
    real, sandbox, runs = airflow
    run_id = runs["approve_by_text"]
    ask = the_ask(sandbox, run_id)
    assert ask["text"].startswith(f"Publish the {run_id[8:18]} sales report? Reply APPROVE or REJECT (ref ")
    assert f"): {real.url}/dags/sms_approval/runs/{run_id}/tasks/approve_publishing/required_actions" in ask["text"]
    reply(sandbox, f"YES please {ref_of(ask)}")  # three questions are pending for this phone: name this one
    assert real.wait_for_run("sms_approval", run_id) == "success"
    states = real.task_states("sms_approval", run_id)
    assert states["approve_publishing"] == "success" and states["publish"] == "success"
    detail = real.hitl_detail("sms_approval", run_id, "approve_publishing")
    assert detail["chosen_options"] == ["Approve"] and detail["params_input"] == {}  # no field to fill in
    lines = real.task_log_lines("sms_approval", run_id, logger_part="")
    assert any("answered by SMS from +614*****002" in line for line in lines)  # who answered, masked


def test_a_rejection_by_text_skips_the_downstream_task(airflow: Any) -> None:
    real, sandbox, runs = airflow
    run_id = runs["reject_by_text"]
    reply(sandbox, f"no {ref_of(the_ask(sandbox, run_id))}")
    assert real.wait_for_run("sms_approval", run_id) == "success"
    assert real.task_states("sms_approval", run_id)["publish"] == "skipped"
    assert real.hitl_detail("sms_approval", run_id, "approve_publishing")["chosen_options"] == ["Reject"]


def test_a_text_after_the_ui_answered_changes_nothing(airflow: Any) -> None:
    real, sandbox, runs = airflow
    run_id = runs["ui_then_text"]
    ask = the_ask(sandbox, run_id)
    real.wait_for_task_state("sms_approval", run_id, "approve_publishing", "deferred")
    # as Airflow's UI answers its own ApprovalOperator: the options, no params to fill in
    status = real.answer_in_ui("sms_approval", run_id, "approve_publishing", ["Approve"], {})
    assert status == 200
    assert real.wait_for_run("sms_approval", run_id) == "success"
    reply(sandbox, f"NO {ref_of(ask)}")
    time.sleep(3)
    detail = real.hitl_detail("sms_approval", run_id, "approve_publishing")
    assert detail["chosen_options"] == ["Approve"] and detail["params_input"] == {}
    assert real.task_states("sms_approval", run_id)["publish"] == "success"


def test_a_missed_deadline_texts_on_call_from_the_triggerer(airflow: Any) -> None:
    real, sandbox, runs = airflow
    run_id = runs["deadline"]
    alert = wait_for(
        lambda: next((m for m in texts_to(sandbox, "+61400000001") if "DEADLINE MISSED" in m["text"]), None),
        what="the deadline alert",
    )
    assert alert["provider"] == "cellcast"
    assert alert["text"].startswith(f"Airflow DEADLINE MISSED: deadline_alert run {run_id}, due ")
    assert real.wait_for_run("deadline_alert", run_id) == "success"  # the alert does not stop the run


def test_airflows_own_approval_operator_texts_its_request_through_the_notifier(airflow: Any) -> None:
    real, sandbox, runs = airflow
    run_id = runs["notifier"]
    ask = wait_for(lambda: texts_to(sandbox, "+61400000031"), what="the notifier's text")[0]
    link = f"{real.url}/dags/hitl_sms_notifier/runs/{run_id}/tasks/approve/required_actions?map_index=-1"
    assert ask["text"] == f"Ship release 1.2? Reply APPROVE or REJECT: {link}"
    assert ask["segments"] <= 2
    real.wait_for_task_state("hitl_sms_notifier", run_id, "approve", "awaiting_input")
    assert real.answer_in_ui("hitl_sms_notifier", run_id, "approve", ["Approve"], {}) == 200
    assert real.wait_for_run("hitl_sms_notifier", run_id) == "success"


def test_a_delivery_wait_deferred_to_the_triggerer_reports_who_was_not_reached(airflow: Any) -> None:
    real, _sandbox, runs = airflow
    assert real.wait_for_run("delivery_report", runs["delivery"]) == "success"
    states = real.task_states("delivery_report", runs["delivery"])
    assert states == {"send_reminders": "success", "wait_for_delivery": "success", "not_reached": "success"}
    lines = real.task_log_lines("delivery_report", runs["delivery"], logger_part="")
    assert any("delivery: 2 delivered, 1 undelivered" in line for line in lines)


def test_a_reply_pushed_by_webhook_starts_the_dag_scheduled_on_its_asset(airflow: Any) -> None:
    real, sandbox, _runs = airflow
    phone = "+61400000051"
    real.unpause("reply_webhook")
    url = f"{real.url}/sms/webhooks/cloudware_default/inbound?secret={WEBHOOK_SECRET}"
    sandbox.webhooks.configure("cloudware", inbound=url, status=None)
    sandbox.store.add_message(direction="in", provider="cloudware", phone=phone, text="STATUS?", status="received")
    thanks = wait_for(lambda: texts_to(sandbox, phone), what="the DAG's acknowledgement")
    assert [m["text"] for m in thanks] == ["Thanks, we got your reply."]
    (run,) = wait_for(lambda: [r for r in real.runs_of("reply_webhook") if r["state"] == "success"], what="the run")
    assert run["run_type"] == "asset_triggered"
    events = real.http.get(f"{real.url}/api/v2/assets/events", params={"limit": 10}, timeout=30).json()
    (event,) = [e for e in events["asset_events"] if e["uri"] == "sms://cloudware_default/inbound"]
    assert event["extra"]["message"]["from_number"] == phone and event["extra"]["message"]["text"] == "STATUS?"
    attempts = sandbox.webhooks.describe()["attempts"]
    assert [a["outcome"] for a in attempts] == [200] and WEBHOOK_SECRET not in str(attempts)
    wrong = real.http.post(url.replace(WEBHOOK_SECRET, "guess"), json={}, timeout=30)
    assert wrong.status_code == 404
    api_server_log = (real.logs_dir / "api-server.log").read_text(errors="replace")
    assert WEBHOOK_SECRET not in api_server_log
