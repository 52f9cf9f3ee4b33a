"""The send pipeline: preparation, batches, the pool, answer normalization and the dry run."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest

from airflow_provider_sms.core.errors import (
    SmsAuthError,
    SmsDeliveryUnknownError,
    SmsInsufficientCreditError,
    SmsValidationError,
)
from airflow_provider_sms.core.http import HttpReply
from airflow_provider_sms.core.pipeline import Call, Outgoing, chunked, one_outcome_each, prepare, run
from airflow_provider_sms.core.results import SendResult

NUMBERS = [f"+614000000{i:02d}" for i in range(10)]


def build(batch: Sequence[str], out: Outgoing) -> Call:
    return Call("POST", "/send", json={"to": list(batch), "text": out.message})


def accept_all(batch: Sequence[str], reply: Any) -> SendResult:
    result = SendResult("p")
    for number in batch:
        result.add_accepted(number, f"id-{number}")
    return result


def reply(call: Call) -> HttpReply:
    return HttpReply(200, {}, "{}", 1, f"{call.method} {call.path}")


def prepared(numbers: Sequence[str] = NUMBERS, **kwargs: Any) -> Any:
    return prepare(list(numbers), "hello", provider="p", max_segments=10, **kwargs)


def test_chunked() -> None:
    assert [list(c) for c in chunked([1, 2, 3, 4, 5], 2)] == [[1, 2], [3, 4], [5]]


def test_prepare_rejects_invalid_numbers_and_applies_the_destination_rule() -> None:
    plan = prepare(
        ["0400000001", "junk", "+2348012345678", "+61400000001"],
        "hi",
        provider="p",
        region="AU",
        destination=lambda n: None if n.startswith("+61") else "AU only",
        max_segments=10,
    )
    assert plan.numbers == ["+61400000001"]
    assert [(r["to"], r["code"]) for r in plan.result.rejected] == [
        ("junk", "invalid_number"),
        ("+2348012345678", "unsupported_destination"),
    ]


def test_prepare_needs_one_valid_recipient() -> None:
    with pytest.raises(SmsValidationError, match="no valid recipient"):
        prepare(["junk"], "hi", provider="p", max_segments=10)


def test_failed_batch_does_not_stop_the_others_and_lists_who_failed() -> None:
    def transport(call: Call) -> HttpReply:
        if "+61400000003" in call.json["to"]:
            raise SmsInsufficientCreditError("low balance", provider="p", attempts=1)
        return reply(call)

    result = run(prepared(NUMBERS[:6]), build, accept_all, batch_size=3, transport=transport)
    assert [a["to"] for a in result.accepted] == NUMBERS[:3]
    assert [(r["to"], r["code"]) for r in result.rejected] == [(n, "insufficient_credit") for n in NUMBERS[3:6]]
    assert result.requests == 2


def test_auth_failure_stops_later_batches_and_raises_with_the_result() -> None:
    calls = []

    def transport(call: Call) -> HttpReply:
        calls.append(call)
        raise SmsAuthError("bad token", attempts=1)

    with pytest.raises(SmsAuthError) as info:
        run(prepared(NUMBERS[:3]), build, accept_all, batch_size=1, transport=transport)
    result = info.value.result
    assert result is not None
    assert len(calls) == 1
    assert [r["code"] for r in result.rejected] == ["auth_failed"] * 3
    assert "not attempted" in result.rejected[2]["reason"]


def test_a_parser_bug_after_the_request_is_delivery_unknown() -> None:
    def broken(batch: Sequence[str], reply: Any) -> SendResult:
        raise KeyError("oops")

    with pytest.raises(SmsDeliveryUnknownError) as info:
        run(prepared(NUMBERS[:1]), build, broken, batch_size=1, transport=reply)
    assert info.value.result is not None
    assert info.value.result.rejected[0]["code"] == "delivery_unknown"
    assert info.value.result.requests == 1


def test_the_pool_really_runs_max_workers_requests_at_once() -> None:
    # Four parties must be in flight together to pass the barrier: a sequential loop would time out.
    barrier = threading.Barrier(4, timeout=5)
    peak, active, lock = [0], [0], threading.Lock()

    def transport(call: Call) -> HttpReply:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        barrier.wait()
        with lock:
            active[0] -= 1
        return reply(call)

    result = run(prepared(NUMBERS[:8]), build, accept_all, batch_size=1, transport=transport, max_workers=4)
    assert peak[0] == 4
    assert [a["to"] for a in result.accepted] == NUMBERS[:8]  # batch order, whatever order they finished in


def test_a_batch_that_cannot_be_built_is_not_sent_and_the_dry_run_says_so() -> None:
    sent = []

    def picky(batch: Sequence[str], out: Outgoing) -> Call:
        if batch[0] == NUMBERS[2]:
            raise SmsValidationError("this batch cannot be built")
        return build(batch, out)

    with pytest.raises(SmsValidationError):
        run(prepared(NUMBERS[:4]), picky, accept_all, batch_size=1, transport=None)
    result = run(prepared(NUMBERS[:4]), picky, accept_all, batch_size=1, transport=lambda c: sent.append(c) or reply(c))
    assert [c.json["to"] for c in sent] == [[NUMBERS[0]], [NUMBERS[1]], [NUMBERS[3]]]
    assert [(r["to"], r["code"]) for r in result.rejected] == [(NUMBERS[2], "invalid_input")]


def test_dry_run_is_the_same_plan_without_the_network() -> None:
    plan = prepared(["+61400000001", "junk", "+61400000002", "+61400000003"])
    result = run(plan, build, accept_all, batch_size=2, transport=None)
    assert result.dry_run is True
    assert [a["to"] for a in result.accepted] == ["+61400000001", "+61400000002", "+61400000003"]
    assert [r["to"] for r in result.rejected] == ["junk"]
    assert result.requests == 2
    assert (result.segments, result.encoding) == (3, "GSM-7")


def test_one_outcome_each_keeps_the_result_true() -> None:
    parsed = SendResult("p")
    parsed.add_accepted("+61400000001", "a")
    parsed.add_accepted("+61400000001", "a-again")  # named twice: the first counts
    parsed.add_accepted("+61400000002", "b")
    parsed.add_rejected("+61400000002", "rejected", "but also refused")  # conflicting: unknown
    parsed.add_accepted("+61499999999", "z")  # never sent: ignored
    batch = ["+61400000001", "+61400000002", "+61400000003"]  # the third is not named: unknown
    result = one_outcome_each(batch, parsed)
    assert result.accepted == [{"to": "+61400000001", "message_id": "a"}]
    assert [(r["to"], r["code"]) for r in result.rejected] == [
        ("+61400000002", "delivery_unknown"),
        ("+61400000003", "delivery_unknown"),
    ]
