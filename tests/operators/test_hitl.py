"""The SMS human-in-the-loop operators: what they add to Airflow's, and a clear error before 3.1."""

from __future__ import annotations

import pytest

from airflow_provider_sms.core.errors import SmsValidationError
from airflow_provider_sms.operators.hitl import HITL_AVAILABLE, SmsApprovalOperator, SmsHITLBranchOperator

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
