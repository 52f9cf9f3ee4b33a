from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from airflow_provider_sms.core.batching import chunked, send_batches
from airflow_provider_sms.core.errors import SmsAuthError, SmsDeliveryUnknownError, SmsInsufficientCreditError
from airflow_provider_sms.core.results import SendResult


def test_chunked() -> None:
    assert [list(c) for c in chunked([1, 2, 3, 4, 5], 2)] == [[1, 2], [3, 4], [5]]


def test_failed_batch_does_not_stop_the_others_and_lists_who_failed() -> None:
    def send(batch: Sequence[str]) -> SendResult:
        if "b" in batch:
            raise SmsInsufficientCreditError("low balance", provider="x")
        return SendResult("x", accepted=[{"to": n, "message_id": n} for n in batch], requests=1)

    result = send_batches(SendResult("x"), [["a"], ["b", "c"], ["d"]], send)
    assert [a["to"] for a in result.accepted] == ["a", "d"]
    assert [(r["to"], r["code"]) for r in result.rejected] == [
        ("b", "insufficient_credit"),
        ("c", "insufficient_credit"),
    ]


def test_auth_failure_stops_later_batches() -> None:
    calls = []

    def send(batch: Sequence[str]) -> SendResult:
        calls.append(batch)
        raise SmsAuthError("bad token")

    with pytest.raises(SmsAuthError) as info:
        send_batches(SendResult("x"), [["a"], ["b"], ["c"]], send)
    result = info.value.result
    assert result is not None
    assert len(calls) == 1
    assert [r["code"] for r in result.rejected] == ["auth_failed"] * 3
    assert "not attempted" in result.rejected[2]["reason"]


def test_unexpected_exception_is_recorded_as_delivery_unknown() -> None:
    def send(batch: Sequence[str]) -> SendResult:
        raise KeyError("oops")

    with pytest.raises(SmsDeliveryUnknownError) as info:
        send_batches(SendResult("x"), [["a"]], send)
    assert info.value.result is not None
    assert info.value.result.rejected[0]["code"] == "delivery_unknown"


def test_pool_bounds_concurrency_and_keeps_batch_order() -> None:
    active = 0
    peak = 0
    lock = threading.Lock()

    def send(batch: Sequence[str]) -> SendResult:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.01)
        with lock:
            active -= 1
        return SendResult("x", accepted=[{"to": batch[0], "message_id": None}], requests=1)

    batches = [[str(i)] for i in range(40)]
    result = send_batches(SendResult("x"), batches, send, max_workers=4)
    assert peak <= 4
    assert [a["to"] for a in result.accepted] == [str(i) for i in range(40)]
    assert result.requests == 40
