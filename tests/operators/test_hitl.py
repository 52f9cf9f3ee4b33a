"""The SMS human-in-the-loop operators: what they add to Airflow's, and a clear error before 3.1."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_sms.core.errors import SmsValidationError
from airflow_provider_sms.operators.hitl import HITL_AVAILABLE, SmsApprovalOperator, SmsHITLBranchOperator
from airflow_provider_sms.state.questions import Questions
from tests.keystore import MemoryKeys

needs_hitl = pytest.mark.skipif(not HITL_AVAILABLE, reason="human-in-the-loop needs Airflow 3.1")


@needs_hitl
def test_the_approval_operator_understands_yes_and_no_and_templates_the_text() -> None:
    op = SmsApprovalOperator(task_id="ok", subject="Go?", sms_conn_id="c", to="+61400000001")
    assert op.sms_answers == {"approve": "Approve", "reject": "Reject", "yes": "Approve", "y": "Approve",
                              "ok": "Approve", "no": "Reject", "n": "Reject"}  # fmt: skip
    assert {"subject", "to", "message", "sender", "sms_conn_id"} <= set(op.template_fields)
    assert dict(op.params) == {}  # no field the UI would ask a person to fill: it answers as Airflow's own
    assert op.options == ["Approve", "Reject"]


@needs_hitl
def test_extra_reply_words_must_name_an_option() -> None:
    op = SmsHITLBranchOperator(
        task_id="b", subject="Which?", options=["Left", "Right"], sms_conn_id="c", to="+61400000001",
        sms_answers={"L": "Left"},
    )  # fmt: skip
    assert op.sms_answers == {"left": "Left", "right": "Right", "l": "Left"}
    with pytest.raises(SmsValidationError, match="not one of"):
        SmsHITLBranchOperator(
            task_id="c", subject="Which?", options=["Left", "Right"], sms_conn_id="c", to="+61400000001",
            sms_answers={"up": "Up"},
        )  # fmt: skip


@needs_hitl
def test_a_poll_interval_below_one_second_is_refused_when_built() -> None:
    with pytest.raises(SmsValidationError, match="at least 1 s"):
        SmsApprovalOperator(task_id="ok", subject="Go?", sms_conn_id="c", to="+61400000001", poll_interval=0)


@pytest.mark.skipif(HITL_AVAILABLE, reason="only where Airflow has no human-in-the-loop operators")
def test_before_airflow_3_1_the_operators_say_what_they_need() -> None:
    with pytest.raises(RuntimeError, match=r"needs Airflow 3\.1"):
        SmsApprovalOperator(task_id="ok", subject="Go?", sms_conn_id="c", to="+61400000001")


@needs_hitl
def test_a_retry_after_the_question_was_texted_texts_nothing_and_keeps_its_reference(
    make_conn: Any, requests_mock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import airflow.sdk.execution_time.hitl as hitl_api

    from airflow_provider_sms.state import questions
    from tests.airflow_names import TaskDeferred
    from tests.payloads import CLOUDWARE_SEND
    from tests.state.test_ledger import StateStoreAccessor

    keys = MemoryKeys()
    monkeypatch.setattr(questions, "VariableKeys", lambda: keys)
    monkeypatch.setattr(questions, "registry_available", lambda: True)
    monkeypatch.setattr("airflow_provider_sms.operators.hitl.registry_available", lambda: True)
    monkeypatch.setattr(hitl_api, "upsert_hitl_detail", lambda **kwargs: None)
    make_conn("approvals", "cloudware", country_code="61")
    requests_mock.post(CLOUDWARE_SEND, json={"status": "success", "data": {"id": "q1"}})
    store = StateStoreAccessor()  # the task's state store (Airflow 3.3): the same for every try of the task

    def run_try(ti_id: str, try_number: int) -> Any:
        ti = SimpleNamespace(
            id=ti_id, dag_id="d", run_id="r", task_id="ok", map_index=-1, try_number=try_number, state=None
        )
        op = SmsApprovalOperator(task_id="ok", subject="Go?", sms_conn_id="approvals", to="+61400000002")
        with pytest.raises(TaskDeferred) as deferred:
            op.execute({"ti": ti, "task_instance": ti, "task_state_store": store})  # type: ignore[arg-type]
        return deferred.value.trigger

    first = run_try("01a20893-6f87-7a7a-821e-4a00ec3060da", 1)
    assert len(requests_mock.request_history) == 1
    assert f"(ref {first.ref})" in requests_mock.request_history[0].json()["message"]
    # The worker is killed after texting; Airflow 3's retry is a new task instance (a new id) whose
    # preferred reference differs, and whose registry sees the first try's open question left behind.
    second = run_try("01a20893-6f87-7a7a-821e-4a00ec3061ff", 2)
    assert len(requests_mock.request_history) == 1  # nobody texted again
    assert second.ref == first.ref  # a reply to the text the person has still answers the question
    assert datetime.fromisoformat(second.since) <= datetime.fromisoformat(first.since)  # replies since the text
    open_now = Questions("approvals", "+61400000002").open()
    assert [(q.ref, q.ti_id) for q in open_now] == [(first.ref, "01a20893-6f87-7a7a-821e-4a00ec3061ff")]
