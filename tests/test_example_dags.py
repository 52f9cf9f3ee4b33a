"""The example DAGs: they import cleanly, and real DAG runs (``dag.test()``) send the right requests."""

from __future__ import annotations

import importlib.util
import re
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_sms._compat import AIRFLOW_V_3
from tests.airflow_names import DagBag
from tests.conftest import EXAMPLE_DAGS
from tests.payloads import cloudware_item
from tests.wire import multipart_fields

EXPECTED = {
    "sms_alerting",
    "scheduled_reminders",
    "mms_campaign",
    "cloudware_queue",
    "reply_approval",
    "reply_survey",
    "inbound_asset_watcher",
    "oncall_escalation",
    "sms_approval",
    "deadline_alert",
    "delivery_report",
    "reply_webhook",
    "quiet_hours_reminders",
    "sms_message_queue",
}
AIRFLOW_3_ONLY = {"inbound_asset_watcher", "sms_approval", "deadline_alert", "reply_webhook", "sms_message_queue"}
# MessageQueueTrigger(scheme="sms"): the common.messaging provider (`make venv` installs it on Airflow 3)
MESSAGING = AIRFLOW_V_3 and importlib.util.find_spec("airflow.providers.common.messaging") is not None


def load_dag(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLE_DAGS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def test_example_dags_import_without_errors(airflow_db: None) -> None:
    bag = DagBag(dag_folder=str(EXAMPLE_DAGS))
    assert bag.import_errors == {}
    # the AssetWatcher, approval and deadline examples define no DAG on Airflow 2.11
    expected = EXPECTED if AIRFLOW_V_3 else EXPECTED - AIRFLOW_3_ONLY
    assert set(bag.dag_ids) >= (expected if MESSAGING else expected - {"sms_message_queue"})


@pytest.fixture
def sms_conns(make_conn: Any) -> None:
    make_conn("cellcast_default", "cellcast")
    make_conn("clickatell_default", "clickatell")
    make_conn("cloudware_default", "cloudware")


@pytest.fixture
def no_alert_history(airflow_db: None) -> None:
    """Alert groups live in Airflow's Variables, which the session's database keeps between tests."""
    from airflow_provider_sms.state.alerts import AlertGroups
    from airflow_provider_sms.state.variables import VariableKeys

    AlertGroups(VariableKeys()).forget()


def test_alerting_dag_texts_on_call_when_the_load_fails(
    no_alert_history: None, sms_conns: None, requests_mock: Any
) -> None:
    requests_mock.post("https://api.cellcast.com/api/v1/gateway", json={"status": True, "data": {}})
    run = load_dag("sms_alerting").test(run_conf={"simulate_failure": True})
    assert run.state == "failed"
    (alert,) = requests_mock.request_history
    body = alert.json()
    assert body["contacts"] == ["+61400000001"]
    assert body["message"].startswith("Airflow FAILED: sms_alerting.nightly_load try 1")
    assert body["message"].endswith("orders table is locked")


def test_alerting_dag_stays_quiet_on_success(no_alert_history: None, sms_conns: None, requests_mock: Any) -> None:
    run = load_dag("sms_alerting").test()
    assert run.state == "success"
    assert requests_mock.call_count == 0


def test_reminders_are_scheduled_for_9am_local(airflow_db: None, sms_conns: None, requests_mock: Any) -> None:
    import pendulum

    requests_mock.post(
        "https://platform.clickatell.com/messages",
        status_code=202,
        json={"messages": [{"apiMessageId": "x", "accepted": True, "to": "0"}]},
    )
    load_dag("scheduled_reminders").test()
    sent = {tuple(r.json()["to"]): r.json() for r in requests_mock.request_history}
    assert set(sent) == {("61400000001",), ("14155550123",), ("2348012345678",)}
    zones = {"61400000001": "Australia/Sydney", "2348012345678": "Africa/Lagos"}
    for (number,), body in sent.items():
        when = datetime.strptime(body["scheduledDeliveryTime"], "%Y-%m-%dT%H:%M:%S%z")
        assert when > datetime.now(timezone.utc)
        if number in zones:
            assert pendulum.instance(when).in_timezone(zones[number]).hour == 9
        assert body["content"].startswith("Hi ")  # Clickatell's field for the text


def test_mms_campaign_uploads_the_image(airflow_db: None, sms_conns: None, requests_mock: Any) -> None:
    requests_mock.post("https://api.cellcast.com/api/v1/gatewaymms", json={"status": True, "data": {}})
    assert load_dag("mms_campaign").test().state == "success"
    request = requests_mock.request_history[0]
    fields = multipart_fields(request.headers["Content-Type"], request.body)
    assert fields["media"][0] == "promo.png"
    assert fields["media"][1] == (EXAMPLE_DAGS / "assets" / "promo.png").read_bytes()


def test_cloudware_queue_takes_recipients_from_xcom(airflow_db: None, sms_conns: None, requests_mock: Any) -> None:
    requests_mock.post("https://api.cloudware.chat/v1/sms/queue", json={"status": "success", "data": {"id": "1"}})
    assert load_dag("cloudware_queue").test().state == "success"
    bodies = sorted((r.json() for r in requests_mock.request_history), key=lambda b: b["to"])
    assert [b["to"] for b in bodies] == ["2348012345678", "2348012345679", "2348012345680"]
    assert all(b["message"].startswith("Our 20") and "newsletter" in b["message"] for b in bodies)


@pytest.mark.skipif(not MESSAGING, reason="MessageQueueTrigger needs common.messaging (Airflow 3, the messaging extra)")
def test_message_queue_example_acknowledges_the_customers_who_replied(sms_conns: None, requests_mock: Any) -> None:
    import asyncio
    from datetime import timedelta
    from types import SimpleNamespace

    from tests.payloads import CLOUDWARE_MESSAGES

    dag = load_dag("sms_message_queue")
    (replies,) = dag.timetable.asset_condition.objects
    classpath, kwargs = replies.watchers[0].trigger.serialize()  # what the DAG processor stores
    assert classpath == "airflow_provider_sms.triggers.inbound.InboundSmsEventTrigger"
    assert kwargs["from_numbers"] == ["+61400000001", "+61400000002"]
    module, _, name = classpath.rpartition(".")
    trigger = getattr(importlib.import_module(module), name)(**kwargs)

    later = datetime.now(timezone.utc) + timedelta(seconds=5)
    listing = [
        cloudware_item("a stranger", later, "m1", sender="61400000009"),
        cloudware_item("Tuesday works", later, "m2", sender="61400000002"),
    ]
    requests_mock.get(CLOUDWARE_MESSAGES, json={"data": listing})

    async def first_event() -> Any:
        async for event in trigger.run():
            return event.payload

    payload = asyncio.run(asyncio.wait_for(first_event(), 30))
    event = SimpleNamespace(extra={"from_trigger": True, "payload": payload})  # the asset event the triggerer adds
    assert dag.get_task("senders").python_callable(triggering_asset_events={replies: [event]}) == ["+61400000002"]
    assert dag.get_task("acknowledge").sms_conn_id == "cloudware_default"


@pytest.mark.parametrize(("reply", "branch"), [("Yes, publish it", "publish"), ("no", "hold")])
def test_reply_approval_waits_deferred_then_branches(
    airflow_db: None, sms_conns: None, requests_mock: Any, reply: str, branch: str
) -> None:
    requests_mock.post("https://api.cloudware.chat/v1/sms/send", json={"status": "success", "data": {"id": "1"}})

    def inbound(request: Any, context: Any) -> dict:
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        received = {
            "type": "message_received",
            "from": "61400000001",
            "to": "61400000000",
            "message": reply,
            "message_id": f"r-{reply}",
            "created_at": now,
            "sent_at": now,
        }
        other = dict(received, **{"from": "61400000999", "message_id": "x", "message": "YES"})
        return {"data": [other, received]}

    requests_mock.get("https://api.cloudware.chat/v1/sms/messages", json=inbound)
    run = load_dag("reply_approval").test()
    assert run.state == "success"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["wait_for_reply"] == "success"
    assert states[branch] == "success"
    assert states["hold" if branch == "publish" else "publish"] == "skipped"
    ask = requests_mock.request_history[0].json()
    assert ask["to"] == "61400000001"
    assert "Reply YES" in ask["message"]


def test_reply_survey_waits_for_each_person_and_tallies(airflow_db: None, sms_conns: None, requests_mock: Any) -> None:
    requests_mock.post("https://api.cloudware.chat/v1/sms/send", json={"status": "success", "data": {"id": "1"}})
    answers = {"61400000011": "YES", "61400000012": "no", "61400000013": "Yes I can", "61400000014": "NO WAY"}

    def inbound(request: Any, context: Any) -> dict:
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"data": [cloudware_item(text, now, f"r{number}", sender=number) for number, text in answers.items()]}

    requests_mock.get("https://api.cloudware.chat/v1/sms/messages", json=inbound)
    run = load_dag("reply_survey").test()
    assert run.state == "success"
    asked = sorted(r.json()["to"] for r in requests_mock.request_history if r.method == "POST")
    assert asked == sorted(answers)
    tally = next(ti for ti in run.get_task_instances() if ti.task_id == "tally")
    assert tally.state == "success"
    assert xcom_value(run, "tally") == {"yes": ["+61400000011", "+61400000013"], "no": ["+61400000012", "+61400000014"]}


def xcom_value(run: Any, task_id: str) -> Any:
    """The return value a task of a finished ``dag.test()`` run pushed (Airflow 3 or 2.11)."""
    try:
        from airflow.models.xcom import XComModel as XCom
    except ImportError:  # Airflow 2.11
        from airflow.models.xcom import XCom  # type: ignore[no-redef]
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XCom)
            .filter(
                XCom.dag_id == run.dag_id,
                XCom.run_id == run.run_id,
                XCom.task_id == task_id,
                XCom.key == "return_value",
            )
            .one()
        )
        # a JSON column: the value comes back deserialized (Airflow 3); pickled bytes need decoding (2.11)
        return XCom.deserialize_value(row) if isinstance(row.value, (bytes, bytearray)) else row.value


def test_escalation_stops_at_the_first_level_that_acknowledges(airflow_db: None, make_conn: Any, sandbox: Any) -> None:
    """A real run: the primary does not answer within ack_within (2 s here), the secondary is paged and
    replies ACK, which ends it; the manager is never paged (dag.test() runs the deferral in-process)."""
    from tests.conftest import reply_when_texted

    make_conn("cloudware_default", "cloudware", host=sandbox.url, country_code="61")
    make_conn("cellcast_default", "cellcast", host=sandbox.url)
    secondary = "+61400000022"
    acknowledged = reply_when_texted(sandbox.store, secondary, "ack")  # answers the moment it is paged
    run = load_dag("oncall_escalation").test(run_conf={"ack_within_seconds": 2})
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert len(acknowledged) == 1, "the secondary was never paged"
    assert run.state == "success", states
    assert xcom_value(run, "who_acknowledged") == "secondary"
    paged = [m["phone"] for m in sandbox.store.all() if m["direction"] == "out"]
    assert paged == ["+61400000021", secondary]


def test_escalation_when_nobody_answers_pages_everyone_and_fails(
    airflow_db: None, make_conn: Any, sandbox: Any
) -> None:
    make_conn("cloudware_default", "cloudware", host=sandbox.url, country_code="61")
    make_conn("cellcast_default", "cellcast", host=sandbox.url)
    run = load_dag("oncall_escalation").test(run_conf={"ack_within_seconds": 1})
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "failed"
    assert states["page_on_call"] == "failed" and states["who_acknowledged"] == "upstream_failed"
    paged = [m["phone"] for m in sandbox.store.all() if m["direction"] == "out"]
    assert paged == ["+61400000021", "+61400000022", "+61400000023"]


LOGICAL_DATE_ONLY = re.compile(
    r"\{\{[^}]*\b(ds|ds_nodash|ts|ts_nodash|logical_date|execution_date|data_interval_\w+)\b"
)


@pytest.mark.parametrize("path", [*sorted(EXAMPLE_DAGS.glob("*.py")), EXAMPLE_DAGS.parent / "README.md"], ids=str)
def test_templates_use_what_every_run_has(path: Any) -> None:
    """An Airflow 3 run may have no logical date: ``{{ ds }}`` and friends render as nothing or fail."""
    text = path.read_text()
    assert LOGICAL_DATE_ONLY.findall(text.replace("dag_run.start_date | ds", "")) == []


def test_reply_survey_reads_its_answers_without_asking_past_the_end() -> None:
    """Iterating Airflow's lazy XCom sequence asks for one item past the end, which the API answers 404 and
    the scheduler logs as "XCom not found"; the tally reads every answer with one slice instead."""
    from collections.abc import Sequence

    class LazyAnswers(Sequence):  # what Airflow hands the task: items by index, or a slice in one read
        def __init__(self, items: list[dict]) -> None:
            self.items, self.past_the_end = items, 0

        def __len__(self) -> int:
            return len(self.items)

        def __getitem__(self, key: Any) -> Any:
            if isinstance(key, int) and key >= len(self.items):
                self.past_the_end += 1
                raise IndexError(key)
            return self.items[key]

    answers = LazyAnswers(
        [{"from_number": "+61400000011", "text": "YES"}, {"from_number": "+61400000012", "text": "no"}]
    )
    tally = load_dag("reply_survey").get_task("tally")
    assert tally.python_callable(answers) == {"yes": ["+61400000011"], "no": ["+61400000012"]}
    assert answers.past_the_end == 0
