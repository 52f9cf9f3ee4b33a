from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_sms.core.results import InboundMessage, SendResult, derive_message_id


def test_send_result_merge_summary_and_json_safety() -> None:
    a = SendResult("cellcast", accepted=[{"to": "+61400000001", "message_id": "m1"}], requests=1)
    b = SendResult("cellcast", unsubscribed=["+61400000003"], requests=2)
    b.add_rejected("+61400000002", "invalid_number", "Number is not valid", provider_code="number_not_valid")
    a.merge(b)
    assert not a.ok
    assert a.not_accepted == ["+61400000002", "+61400000003"]
    assert a.summary() == "cellcast: 1 accepted, 1 rejected, 1 unsubscribed in 3 request(s)"
    assert a.rejected[0]["provider_code"] == "number_not_valid"
    assert json.loads(json.dumps(a.to_dict())) == a.to_dict()


def test_codes_outside_the_vocabulary_are_refused() -> None:
    with pytest.raises(ValueError, match="not a recipient code"):
        SendResult("x").add_rejected("+61400000001", "clickatell_105", "provider codes go in provider_code")


def test_retry_safety_and_fail_over_come_from_the_error_classes() -> None:
    outage = SendResult("x")
    outage.add_rejected("+61400000001", "provider_unavailable", "503")
    outage.add_rejected("+61400000002", "rate_limited", "429")
    assert outage.retry_safe
    assert outage.fail_over_numbers() == ["+61400000001", "+61400000002"]
    mixed = SendResult("x")
    mixed.add_rejected("+61400000001", "provider_unavailable", "503")
    mixed.add_rejected("+61400000002", "delivery_unknown", "timeout")
    mixed.add_rejected("+61400000003", "unsupported_destination", "AU only")
    assert not mixed.retry_safe
    assert mixed.fail_over_numbers() == ["+61400000001", "+61400000003"]
    accepted = SendResult("x", accepted=[{"to": "+61400000004", "message_id": "m"}])
    accepted.add_rejected("+61400000001", "provider_unavailable", "503")
    assert not accepted.retry_safe


def test_inbound_message_round_trips_through_json_in_utc() -> None:
    msg = InboundMessage(
        provider="cloudware",
        message_id="m1",
        from_number="+61400000001",
        to_number=None,
        text="YES",
        received_at=datetime(2030, 1, 1, 10, tzinfo=timezone(timedelta(hours=10))),
        raw={"k": "v"},
    )
    data = json.loads(json.dumps(msg.to_dict()))
    assert data["received_at"] == "2030-01-01T00:00:00+00:00"
    assert InboundMessage.from_dict(data) == msg


def test_derived_message_id_does_not_depend_on_how_the_time_was_written() -> None:
    at = datetime(2030, 1, 1, 9, 0, 0, 455000, tzinfo=timezone.utc)
    same_second = datetime(2030, 1, 1, 19, 0, 0, tzinfo=timezone(timedelta(hours=10)))
    assert derive_message_id("+61400000001", at, "YES") == derive_message_id("+61400000001", same_second, "YES")
    assert derive_message_id("+61400000001", at, "YES") != derive_message_id("+61400000001", at, "NO")
