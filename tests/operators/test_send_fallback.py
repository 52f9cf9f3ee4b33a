"""``SendSmsOperator(deliver_within=..., fallback_conn_ids=..., escalation=..., ack_within=...)`` against the
sandbox: the task sends each step (once, through its send ledger), defers to ``DeliveryFallbackTrigger``
and resumes from its event. The harness here plays the triggerer: it runs the trigger to its event and
hands it to ``resume_fallback``, on the real clock with short timings and deadlines (no fixed sleeps).

The Fallback measurement: +61400000911 fails through Cellcast; with Clickatell as fallback it is
delivered through Clickatell within ``deliver_within`` + one poll of the first send, and a number whose
text was delivered is never texted twice (also when the whole task runs again)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_sms._compat import AIRFLOW_V_3
from airflow_provider_sms.operators.send import SendSmsOperator
from airflow_provider_sms.sandbox.delivery import due_at
from tests.airflow_names import TaskDeferred
from tests.conftest import reply_when_texted
from tests.state.test_ledger import StateStoreAccessor

FAILS, OK, SECOND, THIRD = "+61400000911", "+61400000031", "+61400000022", "+61400000023"
DELIVER_WITHIN, POLL = 4.0, 0.5


class TI:
    dag_id, run_id, task_id, map_index, try_number = "d", "r", "page", -1, 1

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def run_task(op: SendSmsOperator, store: StateStoreAccessor, limit: float = 60) -> tuple[Any, int]:
    """Run ``op`` as Airflow would: execute, then each deferral's trigger to its first event and back.
    Returns the task's result (or raised exception) and the number of deferrals."""
    ti = TI()
    context: Any = {"ti": ti, "task_instance": ti, "task_state_store": store}
    deadline = time.monotonic() + limit
    call = lambda: op.execute(context)  # noqa: E731
    deferrals = 0
    while True:
        assert time.monotonic() < deadline, "the fallback did not end in time"
        op._send_ledger = None  # each execute and resume runs in a fresh worker process: the ledger is read anew
        try:
            return call(), deferrals
        except TaskDeferred as deferred:
            deferrals += 1
            trigger, method = deferred.trigger, deferred.method_name
            # what the triggerer does: rebuild from the serialized form, run to the first event
            _path, kwargs = trigger.serialize()
            rebuilt = type(trigger)(**kwargs)
            event = asyncio.run(asyncio.wait_for(_first(rebuilt), max(deadline - time.monotonic(), 1)))
            call = lambda event=event, method=method: getattr(op, method)(context, event)  # noqa: E731


async def _first(trigger: Any) -> Any:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("the trigger ended without an event")


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox is on loopback: poll faster than the 1 s production minimum."""
    import airflow_provider_sms.core.inbound as inbound

    monkeypatch.setattr(inbound, "MIN_POLL_INTERVAL", 0.01)


@pytest.fixture
def conns(sandbox: Any, make_conn: Any) -> Any:
    for conn_type in ("cellcast", "clickatell", "cloudware"):
        make_conn(f"{conn_type}_default", conn_type, host=sandbox.url)
    sandbox.store.settings.delivery.update({"sent_after": 0.1, "final_after": 0.5})
    return sandbox


def texts(sandbox: Any, phone: str) -> list[dict[str, Any]]:
    return [r for r in sandbox.store.all(phone=phone) if r["direction"] == "out"]


def test_fallback_measurement_failed_via_cellcast_is_delivered_through_clickatell(conns: Any) -> None:
    sandbox = conns
    op = SendSmsOperator(
        task_id="page",
        sms_conn_id="cellcast_default",
        fallback_conn_ids=["clickatell_default"],
        to=[FAILS, OK],
        message="INCIDENT: the nightly load failed",
        deliver_within=timedelta(seconds=DELIVER_WITHIN),
        delivery_poll_interval=POLL,
    )
    store = StateStoreAccessor()
    started = time.time()
    result, deferrals = run_task(op, store)
    out = result["fallback"]
    assert out["status"] == "sent"  # Clickatell has no report API: its text is unconfirmed, nothing left to try
    assert out["reached"] == {OK: "cellcast_default"} and out["unconfirmed"] == {FAILS: "clickatell_default"}
    assert deferrals == 1  # the failure report decided the step; no wait for deliver_within
    rows = texts(sandbox, FAILS)
    assert [r["provider"] for r in rows] == ["cellcast", "clickatell"]
    plan = sandbox.store.settings.delivery
    delivered_at = plan.settles_at(rows[1]).timestamp()
    assert plan.status(rows[1], plan.settles_at(rows[1])) == "delivered"  # the phone got it via Clickatell
    assert plan.status(rows[0], plan.settles_at(rows[0])) == "failed"
    took = delivered_at - due_at(rows[0]).timestamp()
    print(f"fallback: delivered through Clickatell {took:.2f}s after the first send (bound {DELIVER_WITHIN + POLL}s)")
    assert took <= DELIVER_WITHIN + POLL
    assert started <= due_at(rows[0]).timestamp()
    assert len(texts(sandbox, OK)) == 1  # delivered through Cellcast: never texted again

    again, _ = run_task(op, store)  # the same task instance runs again (a retry, a clear)
    assert len(texts(sandbox, FAILS)) == 2 and len(texts(sandbox, OK)) == 1  # the ledger: nobody texted twice
    assert again["fallback"]["reached"] == {OK: "cellcast_default"}


def test_no_report_by_deliver_within_moves_to_the_next_connection(conns: Any) -> None:
    sandbox = conns
    sandbox.store.settings.delivery.update({"sent_after": 0.1, "final_after": 30})  # never final in time
    op = SendSmsOperator(
        task_id="page",
        sms_conn_id="cellcast_default",
        fallback_conn_ids=["cloudware_default"],
        to=OK,
        message="INCIDENT",
        deliver_within=timedelta(seconds=1.5),
        delivery_poll_interval=POLL,
    )
    result, _ = run_task(op, StateStoreAccessor())
    rows = texts(sandbox, OK)
    assert [r["provider"] for r in rows] == ["cellcast", "cloudware"]
    texts_ = result["fallback"]["texts"]
    assert [t["state"] for t in texts_] == ["no_report", "pending"]
    # the fallback goes out when deliver_within ends: not before, and within one poll after
    gap = (due_at(rows[1]) - due_at(rows[0])).total_seconds()
    print(f"fallback after no report: second text {gap:.2f}s after the first (deliver_within 1.5s, poll {POLL}s)")
    assert 1.5 <= gap <= 1.5 + POLL


def test_escalation_to_the_next_contact_when_nobody_is_reached(conns: Any) -> None:
    sandbox = conns
    op = SendSmsOperator(
        task_id="page",
        sms_conn_id="cellcast_default",
        to=FAILS,
        escalation=[SECOND],
        message="INCIDENT",
        deliver_within=timedelta(seconds=DELIVER_WITHIN),
        delivery_poll_interval=POLL,
    )
    result, _ = run_task(op, StateStoreAccessor())
    out = result["fallback"]
    # the last contact through the last connection: nothing would follow, so the task ends without waiting
    assert out["status"] == "sent" and out["unconfirmed"] == {SECOND: "cellcast_default"} and out["level"] == 1
    assert out["not_reached"] == [FAILS]
    assert len(texts(sandbox, FAILS)) == 1 and len(texts(sandbox, SECOND)) == 1


def test_an_ack_by_text_stops_the_escalation(conns: Any) -> None:
    sandbox = conns
    reply_when_texted(sandbox.store, SECOND, "ACK")
    op = SendSmsOperator(
        task_id="page",
        sms_conn_id="cloudware_default",
        to=OK,
        escalation=[SECOND, THIRD],
        message="INCIDENT: reply ACK to take it",
        ack_within=timedelta(seconds=2),
        delivery_poll_interval=POLL,
    )
    result, _ = run_task(op, StateStoreAccessor())
    out = result["fallback"]
    assert out["status"] == "acked" and out["acked_by"] == SECOND and out["level"] == 1
    assert len(texts(sandbox, OK)) == 1 and len(texts(sandbox, SECOND)) == 1 and texts(sandbox, THIRD) == []


def test_nobody_acknowledges_fails_the_task_with_the_result_in_xcom(conns: Any) -> None:
    from airflow_provider_sms._compat import AirflowFailException

    op = SendSmsOperator(
        task_id="page",
        sms_conn_id="cloudware_default",
        to=OK,
        escalation=[SECOND],
        message="INCIDENT",
        ack_within=timedelta(seconds=1),
        delivery_poll_interval=POLL,
    )
    with pytest.raises(AirflowFailException, match="nobody acknowledged"):
        run_task(op, StateStoreAccessor())
    assert len(texts(conns, OK)) == 1 and len(texts(conns, SECOND)) == 1


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"deliver_within": timedelta(0)}, "positive"),
        ({"deliver_within": timedelta(minutes=1), "send_at": timedelta(hours=1)}, "not with messages"),
        ({"escalation": ["+61400000022"]}, "needs deliver_within or ack_within"),
        ({"deliver_within": timedelta(minutes=1), "delivery_poll_interval": 0}, "delivery_poll_interval must be"),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs: dict[str, Any], error: str) -> None:
    from airflow_provider_sms.core.errors import SmsValidationError

    with pytest.raises(SmsValidationError, match=error):
        SendSmsOperator(task_id="t", sms_conn_id="c", to=OK, message="m", **kwargs)


def test_ack_through_a_connection_without_an_inbox_fails_before_sending(conns: Any) -> None:
    from airflow_provider_sms._compat import AirflowFailException

    op = SendSmsOperator(
        task_id="page", sms_conn_id="clickatell_default", to=OK, message="m", ack_within=timedelta(seconds=5)
    )
    with pytest.raises(AirflowFailException, match="no API to list inbound"):
        run_task(op, StateStoreAccessor())
    assert texts(conns, OK) == []


def test_the_trigger_event_alone_resumes_the_task() -> None:
    """``dag.test()`` hands the method only the event: the state travels in it."""
    op = SendSmsOperator(task_id="t", sms_conn_id="c", to=OK, message="m", deliver_within=timedelta(minutes=1))
    ti = SimpleNamespace(xcom_push=lambda **_: None)
    from airflow_provider_sms._compat import AirflowFailException

    with pytest.raises(AirflowFailException, match="without the fallback's state"):
        op.resume_fallback({"ti": ti}, {"status": "wake"})  # type: ignore[arg-type]


@pytest.mark.skipif(not AIRFLOW_V_3, reason="status webhooks become asset events on Airflow 3 only")
@pytest.mark.parametrize("webhooks", [True, False])
def test_status_webhooks_confirm_what_clickatell_cannot_report(
    conns: Any, make_conn: Any, monkeypatch: pytest.MonkeyPatch, webhooks: bool
) -> None:
    """Clickatell has no report API: with its status webhook set up (``webhook_secret``), the reports it
    pushed (asset events of ``sms_status_asset``) confirm its texts, so the fallback is not used."""
    import airflow.sdk.execution_time.context as sdk_context

    sandbox = conns
    extra = {"webhook_secret": "s3cret"} if webhooks else {}
    make_conn("clickatell_default", "clickatell", host=sandbox.url, **extra)
    asked: list[tuple[Any, Any]] = []

    class StatusEvents:  # what the execution API answers for the asset's events
        def __init__(self, asset_name: str | None = None, asset_uri: str | None = None) -> None:
            asked.append((asset_name, asset_uri))

        def after(self, since: str) -> list[Any]:
            return [
                SimpleNamespace(
                    extra={
                        "report": {
                            "provider": "clickatell",
                            "message_id": r["message_id"],
                            "to": r["phone"],
                            "status": "delivered",
                        }
                    }
                )
                for r in sandbox.store.all(provider="clickatell")
            ]

    monkeypatch.setattr(sdk_context, "InletEventsAccessor", StatusEvents)
    op = SendSmsOperator(
        task_id="page",
        sms_conn_id="clickatell_default",
        fallback_conn_ids=["cellcast_default"],
        to=OK,
        message="INCIDENT",
        deliver_within=timedelta(seconds=1),
        delivery_poll_interval=POLL,
    )
    result, _ = run_task(op, StateStoreAccessor())
    providers = [r["provider"] for r in texts(sandbox, OK)]
    if webhooks:
        assert asked == [("sms_status__clickatell_default", "sms://clickatell_default/status")]
        assert providers == ["clickatell"] and result["fallback"]["reached"] == {OK: "clickatell_default"}
    else:  # no webhook: no word from Clickatell by deliver_within, so Cellcast takes over
        assert asked == [] and providers == ["clickatell", "cellcast"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_escalation_in_a_real_airflow_with_its_triggerer(tmp_path: Any) -> None:
    """The example DAG in a real Airflow 3.3 (scheduler, LocalExecutor, triggerer with shared streams):
    the primary does not answer within ack_within, the secondary is paged and replies ACK, which ends it.
    The task logs hold masked numbers only."""
    from tests.realstack import require_newest_airflow

    require_newest_airflow()
    from airflow_provider_sms.sandbox.server import SandboxServer
    from demo.real_airflow import RealAirflow
    from tests.conftest import EXAMPLE_DAGS

    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "oncall_escalation.py").symlink_to(EXAMPLE_DAGS / "oncall_escalation.py")
    with SandboxServer() as sandbox:
        sandbox.store.settings.delivery.update({"sent_after": 0.5, "final_after": 1})
        reply_when_texted(sandbox.store, SECOND, "ACK")
        conns = {
            f"{kind}_default": {
                "conn_type": kind,
                "host": sandbox.url,
                "password": "t",
                "extra": {"country_code": "61"},
            }
            for kind in ("cellcast", "cloudware")
        }
        real = RealAirflow(tmp_path / "airflow", dags, connections=conns, scheduling=True).start()
        try:
            real.wait_until_ready(["oncall_escalation"])
            # 10 s, not less: a trigger firing a few seconds after its deferral meets Airflow's own race
            # between the defer-exit's executor event and the resume (apache/airflow#66374, #72716)
            run_id = real.trigger("oncall_escalation", {"ack_within_seconds": 10})
            state = real.wait_for_run("oncall_escalation", run_id, timeout=150)
            lines = real.task_log_lines("oncall_escalation", run_id, logger_part="")
            tasks = real.task_states("oncall_escalation", run_id)
        finally:
            real.stop()
        assert state == "success", tasks
        paged = [m["phone"] for m in sandbox.store.all() if m["direction"] == "out"]
        assert paged == ["+61400000021", SECOND]
        assert any("acknowledged by +614*****022" in line for line in lines), lines
        assert not any("61400000021" in line or "61400000022" in line for line in lines)


def test_a_fallback_connection_that_cannot_take_validity_fails_before_any_text(conns: Any) -> None:
    from airflow_provider_sms._compat import AirflowFailException

    op = SendSmsOperator(
        task_id="page",
        sms_conn_id="clickatell_default",
        fallback_conn_ids=["cellcast_default"],
        to=OK,
        message="m",
        validity=timedelta(hours=1),
        deliver_within=timedelta(seconds=5),
    )
    with pytest.raises(AirflowFailException, match="cellcast_default"):
        run_task(op, StateStoreAccessor())
    assert texts(conns, OK) == []
