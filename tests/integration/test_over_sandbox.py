"""Hooks, sensor and a full DAG run against the sandbox over real loopback HTTP, faults included."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_sms.core.errors import SmsDeliveryUnknownError
from airflow_provider_sms.hooks.cellcast import CellcastHook
from airflow_provider_sms.hooks.clickatell import ClickatellHook
from airflow_provider_sms.hooks.cloudware import CloudwareHook
from airflow_provider_sms.sandbox.faults import Fault
from tests.payloads import PNG, in_days

AU = [f"+6140000{i:04d}" for i in range(1, 2501)]
NG = [f"+234801234{i:04d}" for i in range(60)]


@pytest.fixture
def conns(make_conn: Any, sandbox: Any) -> Any:
    for conn_type in ("cellcast", "clickatell", "cloudware"):
        make_conn(f"{conn_type}_default", conn_type, host=sandbox.url, country_code="61")
    make_conn("clickatell_xml", "clickatell", host=sandbox.url, request_format="xml")
    return sandbox


def copies(sandbox: Any, provider: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in sandbox.store.all(provider=provider):
        if row["direction"] == "out":
            counts[row["phone"]] = counts.get(row["phone"], 0) + 1
    return counts


def test_cellcast_bulk_send_batches_and_ids_match(conns: Any) -> None:
    result = CellcastHook().send_sms(AU, "Nightly load finished")
    assert len(result.accepted) == 2500
    assert result.requests == 3
    assert conns.faults.stats()["requests"] == {"POST /api/v1/gateway": 3}
    stored = {r["phone"]: r["message_id"] for r in conns.store.all(provider="cellcast")}
    assert {a["to"]: a["message_id"] for a in result.accepted} == stored


def test_cellcast_chat_and_mms(conns: Any) -> None:
    assert len(CellcastHook().send_chat(AU[:3], "hi").accepted) == 3
    result = CellcastHook().send_mms(AU[:2], "look", media=b"\x89PNG\r\n\x1a\n" + b"\0" * 10)
    assert [a["to"] for a in result.accepted] == AU[:2]
    assert all(a["message_id"] for a in result.accepted)


@pytest.mark.parametrize("conn_id", ["clickatell_default", "clickatell_xml"])
def test_clickatell_json_and_xml_with_schedule(conns: Any, conn_id: str) -> None:
    result = ClickatellHook(conn_id).send_message(AU[:450], "Reminder", send_at=timedelta(hours=3))
    assert len(result.accepted) == 450
    assert result.requests == 3
    rows = conns.store.all(provider="clickatell")
    assert {r["status"] for r in rows} == {"scheduled"}


def test_cloudware_send_and_queue_over_the_pool(conns: Any) -> None:
    hook = CloudwareHook(max_workers=4)
    assert len(hook.send_sms(NG, "hi").accepted) == 60
    assert len(hook.queue_sms(NG[:5], "later").accepted) == 5
    assert conns.faults.stats()["peak_in_flight"]["POST /v1/sms/send"] <= 4


def test_503_and_429_are_retried_and_everyone_gets_exactly_one_copy(conns: Any) -> None:
    conns.faults.add(Fault("POST", "/v1/sms/send", count=3, status=503))
    conns.faults.add(Fault("POST", "/api/v1/gateway", count=2, status=429, retry_after="0"))
    cloudware = CloudwareHook(max_workers=2, backoff_factor=0.01).send_sms(NG[:10], "hi")
    cellcast = CellcastHook(backoff_factor=0.01).send_sms(AU[:5], "hi")
    assert len(cloudware.accepted) == 10
    assert len(cellcast.accepted) == 5
    assert copies(conns, "cloudware") == dict.fromkeys(NG[:10], 1)
    assert copies(conns, "cellcast") == dict.fromkeys(AU[:5], 1)
    assert conns.faults.stats()["requests"]["POST /api/v1/gateway"] == 3


def test_dropped_connection_after_a_post_never_sends_a_second_copy(conns: Any) -> None:
    conns.faults.add(Fault("POST", "/messages", count=1, drop=True))
    with pytest.raises(SmsDeliveryUnknownError, match="may have been sent"):
        ClickatellHook().send_sms(AU[:3], "hi")
    assert copies(conns, "clickatell") == dict.fromkeys(AU[:3], 1)
    assert conns.faults.stats()["requests"]["POST /messages"] == 1


def test_500_after_processing_is_not_resent(conns: Any) -> None:
    conns.faults.add(Fault("POST", "/v1/sms/send", count=1, status=500, processed=True))
    result = CloudwareHook(max_workers=1).send_sms(NG[:2], "hi")
    assert [r["code"] for r in result.rejected] == ["delivery_unknown"]
    assert copies(conns, "cloudware") == dict.fromkeys(NG[:2], 1)


def test_latency_within_the_timeouts_is_fine(conns: Any) -> None:
    conns.faults.add(Fault("POST", "/v1/sms/send", count=None, latency_ms=150))
    assert len(CloudwareHook(max_workers=4).send_sms(NG[:8], "hi").accepted) == 8


def test_cellcast_is_paced_under_15_calls_a_second(conns: Any) -> None:
    result = CellcastHook(batch_size=1, max_workers=4).send_sms(AU[:40], "hi")
    assert len(result.accepted) == 40
    stats = conns.faults.stats()["requests"]
    assert stats == {"POST /api/v1/gateway": 40}  # the sandbox answered no 429: we stayed under its limit
    stamps = sorted(datetime.fromisoformat(r["ts"].replace("Z", "+00:00")) for r in conns.store.all())
    per_window = [sum(1 for s in stamps if start <= s < start + timedelta(seconds=1)) for start in stamps]
    assert max(per_window) <= 15


@pytest.mark.parametrize("provider", ["cellcast", "cloudware"])
def test_sensor_matches_a_reply_through_the_sandbox(conns: Any, provider: str) -> None:
    from airflow_provider_sms._compat import PokeReturnValue
    from airflow_provider_sms.sensors.inbound import InboundSmsSensor

    started = datetime.now(timezone.utc) - timedelta(seconds=1)
    for i in range(120):  # older history the sensor must not page through
        conns.store.add_message(
            direction="in",
            provider=provider,
            phone="+61400000001",
            text="YES",
            status="received",
            ts=f"2020-01-01T00:00:{i % 60:02d}.000000Z",
        )
    conns.store.add_message(
        direction="in", provider=provider, phone="+61400000001", text="yes please", status="received"
    )
    sensor = InboundSmsSensor(
        task_id="w",
        sms_conn_id=f"{provider}_default",
        from_numbers="0400000001",
        match=["yes"],
        since=started.isoformat(),
    )
    outcome = sensor.poke({"dag_run": None})
    assert isinstance(outcome, PokeReturnValue)
    assert outcome.xcom_value["text"] == "yes please"
    assert outcome.xcom_value["from_number"] == "+61400000001"
    listing = "GET /api/v1/apiClient/getResponses" if provider == "cellcast" else "GET /v1/sms/messages"
    assert conns.faults.stats()["requests"][listing] == 1


def test_reply_approval_dag_end_to_end(airflow_db: None, conns: Any) -> None:
    from tests.conftest import reply_when_texted
    from tests.test_example_dags import load_dag

    replies = reply_when_texted(conns.store, "+61400000001", "YES")
    dag = load_dag("reply_approval")
    dag.get_task("wait_for_reply").timeout = 60  # an hour in the example: a lost reply fails in a minute here
    run = dag.test()
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert len(replies) == 1, "the approver was never texted"
    assert run.state == "success", states
    assert states["publish"] == "success"
    assert states["hold"] == "skipped"


SEND_AT = in_days(30, tz=timezone(timedelta(hours=11)), hour=9, minute=0, second=0, microsecond=0)
MIXED = ["+61400000001", "0400000002", "not a number", "+61400000001", "+2348012345678"]


@pytest.mark.parametrize("provider", ["cellcast", "clickatell", "cloudware"])
def test_the_neutral_send_has_one_signature_for_every_provider(conns: Any, provider: str) -> None:
    from airflow_provider_sms.core.errors import SmsUnsupportedFeatureError
    from airflow_provider_sms.hooks import get_sms_hook

    hook = get_sms_hook(f"{provider}_default")
    result = hook.send_sms(to=MIXED, message="Your table is ready", sender="Bistro")
    stored = {r["phone"] for r in conns.store.all(provider=provider) if r["direction"] == "out"}
    assert {a["to"] for a in result.accepted} == stored
    assert {r["sender"] for r in conns.store.all(provider=provider)} <= {"Bistro"}
    if provider == "cloudware":  # the documented exception: Cloudware cannot schedule
        with pytest.raises(SmsUnsupportedFeatureError, match="cannot schedule"):
            hook.send_sms(to=MIXED, message="Later", sender="Bistro", send_at=SEND_AT)
        return
    scheduled = hook.send_sms(to=MIXED, message="Later", sender="Bistro", send_at=SEND_AT)
    assert [a["to"] for a in scheduled.accepted] == [a["to"] for a in result.accepted]
    rows = [r for r in conns.store.all(provider=provider) if r["text"] == "Later"]
    assert {r["scheduled_for"] for r in rows} == {
        SEND_AT.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    }


@pytest.mark.parametrize(
    ("provider", "send"),
    [
        ("cellcast", lambda hook, to, **kw: hook.send_sms(to, "Reminder: 9am", **kw)),
        ("cellcast", lambda hook, to, **kw: hook.send_chat(to, "Reminder: 9am", **kw)),
        ("cellcast", lambda hook, to, **kw: hook.send_mms(to, "Reminder", media=PNG, **kw)),
        ("clickatell", lambda hook, to, **kw: hook.send_message(to, "Reminder: 9am", **kw)),
        ("cloudware", lambda hook, to, **kw: hook.send_sms(to, "Reminder: 9am", **kw)),
        ("cloudware", lambda hook, to, **kw: hook.queue_sms(to, "Reminder: 9am", **kw)),
    ],
)
def test_a_dry_run_agrees_with_the_real_send(conns: Any, provider: str, send: Any) -> None:
    from airflow_provider_sms.hooks import get_sms_hook

    to = [*AU[:450], "+2348012345678", "junk", AU[0]]
    hook = get_sms_hook(f"{provider}_default", batch_size=200 if provider != "cloudware" else None)
    plan = send(hook, to, dry_run=True)
    assert conns.store.all() == []
    real = send(hook, to)
    assert plan.dry_run and not real.dry_run
    assert [a["to"] for a in plan.accepted] == [a["to"] for a in real.accepted]
    assert plan.rejected == real.rejected
    assert plan.requests == real.requests == sum(conns.faults.stats()["requests"].values())
    assert (plan.segments, plan.encoding) == (real.segments, real.encoding)
