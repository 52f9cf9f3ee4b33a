from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from airflow_provider_sms.core.results import InboundMessage, SendResult, derive_message_id


def test_send_result_merge_summary_and_json_safety() -> None:
    a = SendResult("cellcast", accepted=[{"to": "+61400000001", "message_id": "m1"}], requests=1)
    b = SendResult("cellcast", unsubscribed=["+61400000003"], requests=2)
    b.add_rejected("+61400000002", "number_not_valid", "Number is not valid")
    a.merge(b)
    assert not a.ok
    assert a.not_accepted == ["+61400000002", "+61400000003"]
    assert a.summary() == "cellcast: 1 accepted, 1 rejected, 1 unsubscribed in 3 request(s)"
    assert json.loads(json.dumps(a.to_dict())) == a.to_dict()


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


def test_derived_message_id_is_stable() -> None:
    assert derive_message_id("a", "b") == derive_message_id("a", "b")
    assert derive_message_id("a", "b") != derive_message_id("a", "c")
