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

from airflow_provider_sms.core.inbound import REPLY_SKEW
from airflow_provider_sms.state import questions
from airflow_provider_sms.state.questions import Questions, choose_reference
from airflow_provider_sms.triggers.hitl import SmsHITLTrigger, chosen_options, reference_for
from airflow_provider_sms.triggers.inbox import Inbox
from tests.keystore import MemoryKeys

ASKED = "+61400000002"
TI_ID = "01a20893-6f87-7a7a-821e-4a00ec3060da"
TI_2 = "01a20893-6f87-7a7a-821e-4a00ec3060db"
WORDS = {"approve": "Approve", "reject": "Reject", "yes": "Approve", "y": "Approve", "no": "Reject", "n": "Reject"}


class FakeHITL:
    """Airflow's human-in-the-loop requests, one per task instance, as its API keeps them."""

    def __init__(self) -> None:
        self.answers: dict[str, SimpleNamespace] = {}

    @property
    def answer(self) -> SimpleNamespace | None:
        return self.answers.get(TI_ID)

    def get(self, ti_id: Any) -> SimpleNamespace:
        return self.answers.get(str(ti_id)) or SimpleNamespace(response_received=False, chosen_options=None)

    def update(self, ti_id: Any, chosen_options: list[str], params_input: dict) -> SimpleNamespace:
        if str(ti_id) in self.answers:
            raise RuntimeError("409: the request was already answered")
        self.answers[str(ti_id)] = SimpleNamespace(
            response_received=True,
            chosen_options=chosen_options,
            params_input=params_input,
            responded_at=datetime.now(timezone.utc),
            responded_by_user=None,
        )
        return self.answers[str(ti_id)]


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> MemoryKeys:
    store = MemoryKeys()
    monkeypatch.setattr(questions, "VariableKeys", lambda: store)
    monkeypatch.setattr(questions, "registry_available", lambda: True)
    return store


@pytest.fixture
def hitl(monkeypatch: pytest.MonkeyPatch, make_conn: Any, sandbox: Any, keys: MemoryKeys) -> FakeHITL:
    import airflow.sdk.execution_time.hitl as api

    fake = FakeHITL()
    monkeypatch.setattr(api, "get_hitl_detail_content_detail", fake.get)
    monkeypatch.setattr(api, "update_hitl_detail_response", fake.update)
    make_conn("approvals", "cloudware", host=sandbox.url, country_code="61")
    Inbox._open.clear()
    return fake


def trigger(
    *,
    timeout: float = 10,
    defaults: list[str] | None = None,
    ti_id: str = TI_ID,
    ref: str | None = None,
    since: datetime | None = None,
) -> SmsHITLTrigger:
    now = datetime.now(timezone.utc)
    return SmsHITLTrigger(
        ti_id=ti_id,
        sms_conn_id="approvals",
        from_numbers=[ASKED],
        answers=WORDS,
        options=["Approve", "Reject"],
        defaults=defaults,
        params_input={},
        since=(since or now - timedelta(seconds=1)).isoformat(),
        timeout_datetime=(now + timedelta(seconds=timeout)).isoformat(),
        poll_interval=0.1,
        ref=ref,
    )


def first_event(t: SmsHITLTrigger) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        async for event in t.run():
            return dict(event.payload)
        raise AssertionError("no event")

    return asyncio.run(run())


def reply(sandbox: Any, phone: str, text: str, ts: datetime | None = None) -> None:
    stamp = ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if ts is not None else None
    sandbox.store.add_message(direction="in", provider="cloudware", phone=phone, text=text, status="received", ts=stamp)


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
    # who answered is said by the event (masked), not by a field of the request
    assert event["responded_by_user"] == {"id": "sms:+614*****002", "name": "SMS from +614*****002"}
    assert event["params_input"] == {}
    assert hitl.answer is not None and hitl.answer.chosen_options == ["Approve"]


def test_a_text_after_an_answer_in_the_ui_changes_nothing(hitl: FakeHITL, sandbox: Any) -> None:
    ui_answer = hitl.update(TI_ID, ["Reject"], {})
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


# --- a reply answers only the question it was meant for (issue 22, 1-2) ---------------------------------


def shared(*triggers: SmsHITLTrigger, then: Any = None, until: Any = None, timeout: float = 15) -> list[list[dict]]:
    """Run triggers through Airflow's SharedStreamManager in one loop, as one triggerer runs them."""
    pytest.importorskip("airflow.triggers.shared_stream", reason="shared trigger streams need Airflow 3.3")
    from tests.triggers.test_shared_inbox import Triggerer

    async def main() -> list[list[dict]]:
        triggerer = Triggerer()
        try:
            ids = [triggerer.add(t) for t in triggers]
            if then is not None:
                await then()
            await triggerer.until(until or (lambda: all(triggerer.events[i] for i in ids)), timeout=timeout)
            return [triggerer.events[i] for i in ids]
        finally:
            await triggerer.stop()

    return asyncio.run(main())


def test_a_reply_sent_before_the_question_never_answers_it_though_the_shared_poll_reads_an_hour_back(
    hitl: FakeHITL, sandbox: Any
) -> None:
    asked = datetime.now(timezone.utc)
    reply(sandbox, ASKED, "YES", ts=asked - timedelta(minutes=30))  # yesterday's "yes", or any before the question
    reply(sandbox, ASKED, "YES " + reference_for(TI_ID), ts=asked - timedelta(seconds=3))

    async def answer_later() -> None:
        await asyncio.sleep(0.5)
        reply(sandbox, ASKED, "no")

    # as the operator sets it: the provider accepted the question at ``asked``, less REPLY_SKEW
    (events,) = shared(trigger(since=asked - REPLY_SKEW), then=answer_later)
    assert events[0]["chosen_options"] == ["Reject"]
    assert hitl.answer is not None and hitl.answer.chosen_options == ["Reject"]


def test_with_two_questions_open_a_reply_naming_none_answers_none_and_the_phone_is_told_the_references(
    hitl: FakeHITL, sandbox: Any, keys: MemoryKeys
) -> None:
    asked = datetime.now(timezone.utc) - timedelta(seconds=1)
    registries = [Questions("approvals", ASKED)]
    ref_1 = choose_reference(registries, TI_ID, asked, None, preferred="4821")
    ref_2 = choose_reference(registries, TI_2, asked, None, preferred="4821")  # the same preference
    assert ref_1 == "4821" and ref_2 != ref_1  # unique among the questions open to the phone
    first, second = trigger(ref=ref_1), trigger(ti_id=TI_2, ref=ref_2)

    async def replies() -> None:
        await asyncio.sleep(0.5)
        reply(sandbox, ASKED, "NO")  # names no reference: meant for which? none
        await asyncio.sleep(1.0)
        reply(sandbox, ASKED, f"yes {ref_2}")
        await asyncio.sleep(1.0)
        reply(sandbox, ASKED, f"no {ref_1}")

    events = shared(first, second, then=replies)
    assert events[0][0]["chosen_options"] == ["Reject"] and events[1][0]["chosen_options"] == ["Approve"]
    assert hitl.answers[TI_ID].chosen_options == ["Reject"] and hitl.answers[TI_2].chosen_options == ["Approve"]
    notices = [m for m in sandbox.store.all(phone=ASKED) if m["direction"] == "out"]
    assert len(notices) == 1  # one short text, from one of the two questions
    assert ref_1 in notices[0]["text"] and ref_2 in notices[0]["text"]
    assert not [k for k in keys.values if k.startswith(questions.QUESTION)]  # both questions closed


def test_two_triggerers_sharing_only_the_database_let_one_reply_answer_one_question(
    hitl: FakeHITL, sandbox: Any, keys: MemoryKeys
) -> None:
    """Two triggers on two separate shared streams (two triggerers): the registry alone arbitrates."""
    asked = datetime.now(timezone.utc) - timedelta(seconds=1)
    registries = [Questions("approvals", ASKED)]
    refs = [choose_reference(registries, ti, asked, None) for ti in (TI_ID, TI_2)]
    reply(sandbox, ASKED, "NO")

    async def both() -> list[dict | None]:
        async def one(t: SmsHITLTrigger) -> dict | None:
            Inbox._open.clear()  # each "triggerer" has its own inbox state
            try:
                async with asyncio.timeout(3):
                    async for event in t.run():
                        return dict(event.payload)
            except TimeoutError:
                return None
            return None

        return list(await asyncio.gather(one(trigger(ref=refs[0])), one(trigger(ti_id=TI_2, ref=refs[1]))))

    assert asyncio.run(both()) == [None, None]  # a "NO" naming no reference rejected neither
    assert hitl.answers == {}


def test_a_reply_is_claimed_by_at_most_one_question(keys: MemoryKeys) -> None:
    registry = Questions("approvals", ASKED)
    when = datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert registry.claim("cloudware", "m1", when, TI_ID)
    assert not registry.claim("cloudware", "m1", when, TI_2)
    assert registry.claimants("cloudware", "m1", when) == [TI_ID]
    # two claimants writing before either lists: both yield, neither holds it (never both)
    prefix = registry._reply_prefix(questions.CLAIM, "cloudware", "m2", when)
    keys.set(prefix + TI_2, "1")
    assert not registry.claim("cloudware", "m2", when, TI_ID)


# --- a provider fault never answers a question (issue 22, 3) --------------------------------------------


def test_a_stream_that_ends_never_takes_the_default_before_the_question_times_out(
    hitl: FakeHITL, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_sms.triggers import inbound

    async def dying_stream(kwargs: dict[str, Any], *, inbox: Inbox | None = None) -> Any:
        assert inbox is not None
        inbox.ready.set()
        inbox.region = "AU"
        yield inbound.InboxPoll()
        raise RecursionError("a page nested too deep")

    monkeypatch.setattr(inbound, "open_inbox_stream", dying_stream)
    started = datetime.now(timezone.utc)
    event = first_event(trigger(timeout=1.5, defaults=["Reject"]))
    assert datetime.now(timezone.utc) - started >= timedelta(seconds=1.4)  # waited for its own timeout
    assert event["timedout"] is True


def test_the_triggerer_log_line_shows_no_number_and_no_text(hitl: FakeHITL, sandbox: Any) -> None:
    reply(sandbox, ASKED, "yes, publish the secret plan")
    t = trigger()

    async def run() -> Any:
        async for event in t.run():
            return event
        raise AssertionError("no event")

    event = asyncio.run(run())
    assert ASKED not in repr(event) and "secret plan" not in repr(event)
    assert ASKED not in str(event.payload)


def test_a_reply_that_answered_one_question_never_answers_the_next_one_asked(hitl: FakeHITL, sandbox: Any) -> None:
    reply(sandbox, ASKED, "YES")
    assert first_event(trigger())["chosen_options"] == ["Approve"]
    later = datetime.now(timezone.utc) + REPLY_SKEW  # the second question is accepted after that reply
    event = first_event(trigger(ti_id=TI_2, since=later, timeout=1.5, defaults=["Reject"]))
    assert event["timedout"] is True  # the "YES" was consumed by the first question, and came before this one
    assert hitl.answers[TI_2].chosen_options == ["Reject"]
