"""Real runs in a real Airflow 3 (API server, scheduler, DAG processor, triggerer) against the sandbox.

What only a real deployment exercises: a Deadline Alert sent from the triggerer, an approval answered
by text and recorded through Airflow's human-in-the-loop API, a text after a UI answer, and Airflow's
own ApprovalOperator texting its request through ``SmsNotifier``. One Airflow serves the module; every
run is triggered up front so they progress together, then each test plays its part.
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

APPROVER = "+61400000002"
RUNS = {
    "approve_by_text": ("sms_approval", None),
    "reject_by_text": ("sms_approval", None),
    "ui_then_text": ("sms_approval", None),
    "deadline": ("deadline_alert", {"work_seconds": 25}),
    "notifier": ("hitl_sms_notifier", None),
}


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RealAirflow, Any, dict[str, str]]]:
    from airflow_provider_sms.sandbox.server import SandboxServer

    dags = tmp_path_factory.mktemp("dags")
    for source in (EXAMPLE_DAGS / "sms_approval.py", EXAMPLE_DAGS / "deadline_alert.py"):
        (dags / source.name).symlink_to(source)
    (dags / "hitl_sms_notifier.py").symlink_to(Path(__file__).parent.parent / "dags" / "hitl_sms_notifier.py")
    with SandboxServer() as sandbox:
        conns = {
            f"{kind}_default": {"conn_type": kind, "host": sandbox.url, "password": "real-airflow-token"}
            for kind in ("cellcast", "cloudware")
        }
        real = RealAirflow(
            tmp_path_factory.mktemp("airflow"),
            dags,
            connections=conns,
            env={"AIRFLOW_VAR_REPORT_DEADLINE_SECONDS": "5"},
        ).start()
        try:
            real.wait_until_ready(["sms_approval", "deadline_alert", "hitl_sms_notifier"])
            runs = {name: real.trigger(dag_id, conf) for name, (dag_id, conf) in RUNS.items()}
            yield real, sandbox, runs
        finally:
            real.stop()


def texts_to(sandbox: Any, phone: str, since_seq: int = 0) -> list[dict[str, Any]]:
    return [m for m in sandbox.store.all(phone=phone) if m["direction"] == "out" and m["seq"] > since_seq]


def wait_for(condition: Any, timeout: float = 120, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise TimeoutError(f"waited {timeout}s for {what}")


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
    assert detail["chosen_options"] == ["Approve"]
    assert detail["params_input"]["answered_by"] == "SMS from +614*****002"


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
    status = real.answer_in_ui("sms_approval", run_id, "approve_publishing", ["Approve"], {"answered_by": ""})
    assert status == 200
    assert real.wait_for_run("sms_approval", run_id) == "success"
    reply(sandbox, f"NO {ref_of(ask)}")
    time.sleep(3)
    detail = real.hitl_detail("sms_approval", run_id, "approve_publishing")
    assert detail["chosen_options"] == ["Approve"] and detail["params_input"]["answered_by"] == ""
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
