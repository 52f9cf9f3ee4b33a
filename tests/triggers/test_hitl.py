"""SmsHITLTrigger: answers by text, recorded through Airflow's human-in-the-loop calls (faked here).

The inbox is the sandbox over loopback; Airflow's ``get_hitl_detail_content_detail`` and
``update_hitl_detail_response`` (which reach the API server from a real triggerer) are replaced by a
small fake that keeps one request and refuses a second answer, as Airflow's API does.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("airflow.providers.standard.operators.hitl", reason="human-in-the-loop needs Airflow 3.1")

from airflow_provider_sms.core.results import InboundMessage
from airflow_provider_sms.triggers.hitl import SmsHITLTrigger, chosen_options, meant_for, reference_for
from airflow_provider_sms.triggers.inbox import Inbox

ASKED = "+61400000002"
TI_ID = "01a20893-6f87-7a7a-821e-4a00ec3060da"
WORDS = {"approve": "Approve", "reject": "Reject", "yes": "Approve", "y": "Approve", "no": "Reject", "n": "Reject"}


class FakeHITL:
    """One human-in-the-loop request, as Airflow's API keeps it."""

    def __init__(self) -> None:
        self.answer: SimpleNamespace | None = None

    def get(self, ti_id: Any) -> SimpleNamespace:
        return self.answer or SimpleNamespace(response_received=False, chosen_options=None)

    def update(self, ti_id: Any, chosen_options: list[str], params_input: dict) -> SimpleNamespace:
        if self.answer is not None:
            raise RuntimeError("409: the request was already answered")
        self.answer = SimpleNamespace(
            response_received=True,
            chosen_options=chosen_options,
            params_input=params_input,
            responded_at=datetime.now(timezone.utc),
            responded_by_user=None,
        )
        return self.answer


@pytest.fixture
def hitl(monkeypatch: pytest.MonkeyPatch, make_conn: Any, sandbox: Any) -> FakeHITL:
    import airflow.sdk.execution_time.hitl as api

    fake = FakeHITL()
    monkeypatch.setattr(api, "get_hitl_detail_content_detail", fake.get)
    monkeypatch.setattr(api, "update_hitl_detail_response", fake.update)
    make_conn("approvals", "cloudware", host=sandbox.url, country_code="61")
    Inbox._open.clear()
    return fake


def trigger(*, timeout: float = 10, defaults: list[str] | None = None) -> SmsHITLTrigger:
    now = datetime.now(timezone.utc)
    return SmsHITLTrigger(
        ti_id=TI_ID,
        sms_conn_id="approvals",
        from_numbers=[ASKED],
        answers=WORDS,
        options=["Approve", "Reject"],
        defaults=defaults,
        params_input={"answered_by": ""},
        since=(now - timedelta(seconds=1)).isoformat(),
        timeout_datetime=(now + timedelta(seconds=timeout)).isoformat(),
        poll_interval=0.1,
    )


def first_event(t: SmsHITLTrigger) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        async for event in t.run():
            return dict(event.payload)
        raise AssertionError("no event")

    return asyncio.run(run())


def reply(sandbox: Any, phone: str, text: str) -> None:
    sandbox.store.add_message(direction="in", provider="cloudware", phone=phone, text=text, status="received")


@pytest.mark.parametrize(
    ("text", "chosen"),
    [
        ("Yes", ["Approve"]),
        ("ok, yes please", ["Approve"]),
        ("APPROVE!", ["Approve"]),
        ("no", ["Reject"]),
        ("yes no", None),  # ambiguous
        ("yesterday", None),  # not a whole word
        ("maybe", None),
    ],
)
def test_reply_words_are_whole_words_in_any_case(text: str, chosen: list[str] | None) -> None:
    assert chosen_options(text, WORDS, multiple=False) == chosen


def test_an_sms_yes_from_the_asked_phone_is_recorded_as_the_answer(hitl: FakeHITL, sandbox: Any) -> None:
    reply(sandbox, "+61400000099", "YES")  # someone else
    reply(sandbox, ASKED, "what is this about?")  # names no option
    reply(sandbox, ASKED, "yes, publish")
    reply(sandbox, ASKED, "no wait")  # a second answer: too late
    event = first_event(trigger())
    assert event["chosen_options"] == ["Approve"]
    assert event["timedout"] is False
    assert event["responded_by_user"] == {"id": f"sms:{ASKED}", "name": "SMS from +614*****002"}
    assert event["params_input"] == {"answered_by": "SMS from +614*****002"}
    assert hitl.answer is not None and hitl.answer.chosen_options == ["Approve"]
    assert hitl.answer.params_input == {"answered_by": "SMS from +614*****002"}


def test_a_text_after_an_answer_in_the_ui_changes_nothing(hitl: FakeHITL, sandbox: Any) -> None:
    ui_answer = hitl.update(TI_ID, ["Reject"], {"answered_by": ""})
    ui_answer.responded_by_user = SimpleNamespace(id="7", name="Ann")
    reply(sandbox, ASKED, "YES")
    event = first_event(trigger())
    assert event["chosen_options"] == ["Reject"]
    assert event["responded_by_user"] == {"id": "7", "name": "Ann"}
    assert hitl.answer is ui_answer


def test_no_answer_takes_the_defaults_at_the_timeout(hitl: FakeHITL) -> None:
    event = first_event(trigger(timeout=0.5, defaults=["Reject"]))
    assert event["chosen_options"] == ["Reject"]
    assert event["timedout"] is True and event["responded_by_user"] is None


def test_no_answer_without_defaults_is_a_timeout_error(hitl: FakeHITL) -> None:
    event = first_event(trigger(timeout=0.5))
    assert event["error_type"] == "timeout"
    assert hitl.answer is None


def test_a_reply_goes_to_the_question_it_names_or_else_to_the_latest_one() -> None:
    asked = datetime(2030, 1, 1, 9, tzinfo=timezone.utc)
    pending = {"1111": asked, "2222": asked + timedelta(minutes=5)}

    def said(text: str, minutes: int) -> InboundMessage:
        return InboundMessage("cloudware", "m", ASKED, None, text, asked + timedelta(minutes=minutes))

    assert meant_for(said("YES 1111", 10), "1111", pending)  # names the older question
    assert not meant_for(said("YES 1111", 10), "2222", pending)
    assert meant_for(said("yes", 10), "2222", pending)  # no reference: the latest question asked
    assert not meant_for(said("yes", 10), "1111", pending)
    assert meant_for(said("yes", 2), "1111", pending)  # before the second question went out
    assert meant_for(said("yes", 2), "9999", {})  # alone (a trigger polling on its own)
    assert not meant_for(said("yes 4821", 2), "9999", {})  # names a reference that is not its own
    assert reference_for(TI_ID) == reference_for(TI_ID) and len(reference_for(TI_ID)) == 4
