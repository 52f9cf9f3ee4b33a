"""The fallback ladder's decisions, on a simulated clock: next connection, next contact, never twice."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_sms.core.errors import SmsValidationError
from airflow_provider_sms.core.fallback import (
    FallbackPolicy,
    Ladder,
    Step,
    acknowledge,
    apply_reports,
    due_sends,
    record_send,
    step_key,
    summary,
    wait_for,
)

T0 = datetime(2030, 1, 1, 3, 0, tzinfo=timezone.utc)
A, B, C = "+61400000001", "+61400000002", "+61400000003"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def accept(step: Step, *, refused: dict[str, str] | None = None) -> dict[str, Any]:
    """What a send returns: every number of the step accepted, with an id naming step and number."""
    refused = refused or {}
    return {
        "accepted": [
            {"to": n, "message_id": f"{step.conn_id}-{n[-3:]}", "conn_id": step.conn_id}
            for n in step.numbers
            if n not in refused
        ],
        "rejected": [{"to": n, "code": code, "reason": "test"} for n, code in refused.items()],
    }


def report(step: Step, number: str, status: str) -> dict[str, Any]:
    return {
        "provider": "x",
        "message_id": f"{step.conn_id}-{number[-3:]}",
        "to": number,
        "status": status,
        "conn_id": step.conn_id,
    }


def send_all(policy: FallbackPolicy, ladder: Ladder, now: datetime, **refused: Any) -> list[Step]:
    steps = due_sends(policy, ladder, now)
    for step in steps:
        record_send(
            ladder, step, accept(step, refused=refused.get(step.conn_id)), now, deliver_within=policy.deliver_within
        )
    return steps


def test_failed_text_goes_through_the_next_connection_and_a_delivered_one_never_again() -> None:
    policy = FallbackPolicy.of(["cellcast", "clickatell"], [A, B], deliver_within=timedelta(minutes=2))
    ladder = Ladder()
    (first,) = send_all(policy, ladder, at(0))
    assert (first.conn_id, first.numbers) == ("cellcast", (A, B))
    wait = wait_for(policy, ladder)
    assert wait is not None and wait.wake_at == at(120).isoformat() and wait.ack_from is None
    apply_reports(ladder, [report(first, A, "failed"), report(first, B, "delivered")])
    (second,) = send_all(policy, ladder, at(3))
    assert (second.conn_id, second.numbers) == ("clickatell", (A,))  # B was delivered: never texted again
    assert due_sends(policy, ladder, at(4)) == []
    assert ladder.finished == "sent"  # the last connection took A: nothing left to wait for
    out = summary(policy, ladder)
    assert out["reached"] == {B: "cellcast"} and out["unconfirmed"] == {A: "clickatell"} and out["not_reached"] == []


def test_no_report_by_deliver_within_counts_as_not_delivered() -> None:
    policy = FallbackPolicy.of(["cellcast", "cloudware", "clickatell"], [A], deliver_within=timedelta(seconds=60))
    ladder = Ladder()
    send_all(policy, ladder, at(0))
    assert due_sends(policy, ladder, at(59)) == []  # still within deliver_within
    (second,) = send_all(policy, ladder, at(60))
    assert second.conn_id == "cloudware"
    apply_reports(ladder, [report(second, A, "delivered")])
    assert due_sends(policy, ladder, at(200)) == [] and ladder.finished == "delivered"


def test_a_refusal_moves_on_at_once_but_an_invalid_number_never_does() -> None:
    policy = FallbackPolicy.of(["cellcast", "clickatell"], [A, B], deliver_within=timedelta(minutes=2))
    ladder = Ladder()
    send_all(policy, ladder, at(0), cellcast={A: "provider_unavailable", B: "invalid_number"})
    steps = due_sends(policy, ladder, at(0))
    assert [(s.conn_id, s.numbers) for s in steps] == [("clickatell", (A,))]


def test_escalation_pages_the_next_contact_only_when_nobody_of_the_level_was_reached() -> None:
    policy = FallbackPolicy.of(
        ["cellcast", "clickatell"], [A], escalation=[B, [C]], deliver_within=timedelta(minutes=1)
    )
    ladder = Ladder()
    (s1,) = send_all(policy, ladder, at(0))
    apply_reports(ladder, [report(s1, A, "expired")])
    (s2,) = send_all(policy, ladder, at(5))
    assert (s2.level, s2.conn_id) == (0, "clickatell")
    (s3,) = send_all(policy, ladder, at(65))  # clickatell never confirmed A within a minute
    assert (s3.level, s3.conn_id, s3.numbers) == (1, "cellcast", (B,))
    apply_reports(ladder, [report(s3, B, "delivered")])
    assert due_sends(policy, ladder, at(70)) == [] and ladder.finished == "delivered"
    assert summary(policy, ladder)["reached"] == {B: "cellcast"}


def test_ack_within_moves_on_without_an_ack_and_an_ack_stops_it() -> None:
    policy = FallbackPolicy.of(["cloudware"], [A], escalation=[B, C], ack_within=timedelta(minutes=5))
    ladder = Ladder()
    (first,) = send_all(policy, ladder, at(0))
    assert first.numbers == (A,)
    wait = wait_for(policy, ladder)
    assert wait is not None and wait.messages == [] and wait.wake_at == at(300).isoformat()
    assert wait.ack_from == [A] and wait.ack_since == at(0).isoformat()
    assert due_sends(policy, ladder, at(299)) == []
    (s2,) = send_all(policy, ladder, at(300))
    assert s2.numbers == (B,)
    wait = wait_for(policy, ladder)
    assert wait is not None and wait.ack_from == [A, B]  # a late ACK from A still counts
    acknowledge(ladder, {"from_number": A, "received_at": at(310).isoformat(), "message_id": "r1"})
    assert due_sends(policy, ladder, at(900)) == [] and wait_for(policy, ladder) is None
    out = summary(policy, ladder)
    assert out["status"] == "acked" and out["acked_by"] == A and out["level"] == 1


def test_nobody_acknowledges_ends_no_ack() -> None:
    policy = FallbackPolicy.of(["cloudware"], [A], escalation=[B], ack_within=timedelta(minutes=1))
    ladder = Ladder()
    send_all(policy, ladder, at(0))
    send_all(policy, ladder, at(60))
    assert due_sends(policy, ladder, at(120)) == [] and ladder.finished == "no_ack"


def test_ack_and_deliver_within_together_fall_back_inside_the_level() -> None:
    policy = FallbackPolicy.of(
        ["cellcast", "clickatell"], [A], escalation=[B], deliver_within=timedelta(seconds=30), ack_within=600
    )
    ladder = Ladder()
    (s1,) = send_all(policy, ladder, at(0))
    apply_reports(ladder, [report(s1, A, "failed")])
    (s2,) = send_all(policy, ladder, at(4))
    assert (s2.level, s2.conn_id) == (0, "clickatell")
    (s3,) = send_all(policy, ladder, at(34))  # nobody of level 0 can be reached any more: page B now
    assert (s3.level, s3.numbers) == (1, (B,))


def test_the_ladder_survives_a_round_trip_through_json() -> None:
    import json

    policy = FallbackPolicy.of(["cellcast", "clickatell"], [A], escalation=[B], deliver_within=60, ack_within=300)
    ladder = Ladder()
    send_all(policy, ladder, at(0))
    again = Ladder.from_dict(json.loads(json.dumps(ladder.to_dict())))
    assert again == ladder
    assert FallbackPolicy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy


def test_step_keys_differ_per_level_and_connection() -> None:
    keys = {step_key(Step(level, 0, conn, (A,)), "hi") for level in (0, 1) for conn in ("a", "b")}
    assert len(keys) == 4


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({}, "deliver_within, ack_within"),
        ({"deliver_within": timedelta(0)}, "positive"),
        ({"deliver_within": 60, "conn_ids": ["a", "a"]}, "twice"),
        ({"deliver_within": 60, "escalation": [[]]}, "at least one number"),
    ],
)
def test_bad_policies_are_refused(kwargs: dict[str, Any], error: str) -> None:
    conns = kwargs.pop("conn_ids", ["a", "b"])
    with pytest.raises(SmsValidationError, match=error):
        FallbackPolicy.of(conns, [A], **kwargs)


def test_escalation_as_text_is_one_contact_per_number() -> None:
    policy = FallbackPolicy.of(["a"], f"{A}", escalation=f"{B}, {C}", ack_within=60)
    assert policy.levels == ((A,), (B,), (C,))


def test_numbers_are_kept_in_e164_as_sends_report_them() -> None:
    """A national number in ``to`` must match the E.164 ``to`` of its accepted text, or the ladder would
    think nobody was texted and text them again through the next connection."""
    policy = FallbackPolicy.of(
        ["a", "b"], "0400 000 001, nonsense", escalation=["0400000002"], deliver_within=60, region="AU"
    )
    assert policy.levels == ((A, "nonsense"), (B,))
    ladder = Ladder()
    (step,) = due_sends(policy, ladder, at(0))
    record_send(
        ladder,
        step,
        {
            "accepted": [{"to": A, "message_id": "m", "conn_id": "a"}],
            "rejected": [{"to": "nonsense", "code": "invalid_number"}],
        },
        at(0),
        deliver_within=60,
    )
    assert due_sends(policy, ladder, at(1)) == []  # A waits for its report; the invalid number never moves on
