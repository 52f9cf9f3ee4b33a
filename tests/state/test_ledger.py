"""The send ledger: a retry sends only to recipients no earlier try got accepted for, requests that may
have gone out unanswered are held in doubt (never more than the pool runs at once), claims are durable
before each request goes out, writes are batched (never one per message), the merged result counts
every try's requests, and each text's parts, encoding and estimated cost are kept."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_sms._compat import AirflowFailException
from airflow_provider_sms.core.errors import SmsError
from airflow_provider_sms.operators.cloudware import CloudwareQueueSmsOperator
from airflow_provider_sms.operators.send import SendSmsOperator
from airflow_provider_sms.state.ledger import (
    KEY,
    VARIABLE_PREFIX,
    MemoryStore,
    SendLedger,
    TaskStateStore,
    VariableStore,
    ledger_for,
    text_key,
)
from tests.payloads import CELLCAST_GATEWAY, CLOUDWARE_SEND, cellcast_queued

NUMBERS = [f"+23480123456{i:02d}" for i in range(10)]


class StateStoreAccessor:
    """Airflow 3.3's ``context["task_state_store"]`` as a task sees it: JSON values by key, kept across
    tries of one task instance (here: across operator instances sharing this object)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.retention: list[Any] = []
        self.fail_writes = False

    def get(self, key: str, default: Any = None) -> Any:
        raw = self.values.get(key)
        return default if raw is None else json.loads(raw)

    def set(self, key: str, value: Any, *, retention: timedelta | None = None) -> None:
        if self.fail_writes:
            raise ConnectionError("the API server is unreachable")
        self.values[key] = json.dumps(value)
        self.retention.append(retention)


class TI:
    def __init__(self, try_number: int) -> None:
        self.try_number = try_number
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def run_try(op: Any, store: StateStoreAccessor, try_number: int) -> tuple[Any, TI]:
    ti = TI(try_number)
    return op.execute({"ti": ti, "task_state_store": store}), ti


def test_an_outage_mid_send_is_retried_and_the_retry_texts_only_the_rest(make_conn: Any, requests_mock: Any) -> None:
    make_conn("cw", "cloudware")
    store = StateStoreAccessor()
    texts: dict[str, int] = {}
    outage = {"on": True}

    def answer(request: Any, context: Any) -> dict[str, Any]:
        number = "+" + request.json()["to"]
        if outage["on"] and number in NUMBERS[6:]:
            context.status_code = 503
            return {"message": "down"}
        texts[number] = texts.get(number, 0) + 1
        return {"status": "success", "data": {"id": f"cw-{number[-2:]}"}}

    requests_mock.post(CLOUDWARE_SEND, json=answer)

    def op() -> SendSmsOperator:
        return SendSmsOperator(task_id="t", sms_conn_id="cw", to=NUMBERS, message="hi", max_workers=1)

    with pytest.raises(SmsError, match="a retry sends only to them") as first:
        run_try(op(), store, 1)
    assert not isinstance(first.value, AirflowFailException)  # Airflow retries it
    assert sorted(texts) == NUMBERS[:6]
    outage["on"] = False
    result, _ti = run_try(op(), store, 2)
    assert texts == dict.fromkeys(NUMBERS, 1)  # everyone once: nobody twice, nobody left out
    assert sorted(a["to"] for a in result["accepted"]) == NUMBERS  # one merged result for both tries
    ids = {a["to"]: (a["message_id"], a["conn_id"]) for a in result["accepted"]}
    assert ids[NUMBERS[0]] == ("cw-00", "cw") and ids[NUMBERS[9]] == ("cw-09", "cw")
    assert result["rejected"] == [] and result["in_doubt"] == []
    assert all(r == timedelta(days=30) for r in store.retention)  # every key expires


def killed_try(
    store: StateStoreAccessor, conn_id: str, message: str, claimed: list[str], answered: dict[str, str]
) -> None:
    """What a try killed mid-send leaves in the ledger: a claim for ``claimed``, outcomes for ``answered``."""
    from airflow_provider_sms.core.results import SendResult

    journal = SendLedger(TaskStateStore(store), try_number=1).journal(message, conn_id)
    journal.begin([claimed], 1)  # one request to them all, claimed, then the worker died
    journal.before(0)
    journal.after(0, SendResult("x", accepted=[{"to": n, "message_id": i} for n, i in answered.items()]))
    journal.end()


def sandbox_texts(sandbox: Any, provider: str) -> dict[str, int]:
    from collections import Counter

    return dict(Counter(row["phone"] for row in sandbox.store.all(provider=provider) if row["direction"] == "out"))


def test_in_doubt_after_a_kill_cloudware_is_asked_and_nobody_is_texted_twice_or_left_out(
    make_conn: Any, sandbox: Any
) -> None:
    from airflow_provider_sms.hooks import get_sms_hook

    make_conn("cloudware_default", "cloudware", host=sandbox.url)
    store = StateStoreAccessor()
    # the killed try claimed four, sent to two (the second answer never came back), the rest never left
    first = get_sms_hook("cloudware_default").queue_sms(NUMBERS[:2], "hello")
    ids = {a["to"]: a["message_id"] for a in first.accepted}
    killed_try(store, "cloudware_default", "hello", NUMBERS[:4], {NUMBERS[0]: ids[NUMBERS[0]]})
    result, _ti = run_try(CloudwareQueueSmsOperator(task_id="t", to=NUMBERS, message="hello"), store, 2)
    assert sandbox_texts(sandbox, "cloudware") == dict.fromkeys(NUMBERS, 1)  # once each, nobody left out
    assert result["in_doubt"] == [] and sorted(a["to"] for a in result["accepted"]) == NUMBERS
    confirmed = next(a for a in result["accepted"] if a["to"] == NUMBERS[1])
    assert confirmed == {"to": NUMBERS[1], "message_id": ids[NUMBERS[1]], "conn_id": "cloudware_default"}
    # what the provider confirmed is in the ledger now: a third try asks nothing and sends nothing
    stats_before = sandbox.faults.stats()["total_requests"]
    again, _ti = run_try(CloudwareQueueSmsOperator(task_id="t", to=NUMBERS, message="hello"), store, 3)
    assert sandbox.faults.stats()["total_requests"] == stats_before and again["in_doubt"] == []


def test_in_doubt_after_a_kill_cellcast_is_asked_through_its_sent_list(make_conn: Any, sandbox: Any) -> None:
    from airflow_provider_sms.hooks import get_sms_hook

    make_conn("cellcast_default", "cellcast", host=sandbox.url)
    store = StateStoreAccessor()
    au = [f"+6140000010{i}" for i in range(6)]
    # the killed try claimed a batch of four; the provider took it (the answer was lost); two never tried
    get_sms_hook("cellcast_default").send_sms(au[:4], "hello")
    killed_try(store, "cellcast_default", "hello", au[:4], {})
    op = SendSmsOperator(task_id="t", sms_conn_id="cellcast_default", to=au, message="hello")
    result, _ti = run_try(op, store, 2)
    assert sandbox_texts(sandbox, "cellcast") == dict.fromkeys(au, 1)
    assert result["in_doubt"] == [] and sorted(a["to"] for a in result["accepted"]) == au
    asked = sandbox.faults.stats()["requests"]
    assert asked.get("GET /api/v2/report/message") == 1 and asked.get("POST /api/v1/gateway") == 2


def test_in_doubt_that_the_provider_cannot_settle_is_reported_and_not_resent(
    make_conn: Any, requests_mock: Any
) -> None:
    from tests.payloads import CLICKATELL_MESSAGES

    make_conn("clickatell_default", "clickatell")
    store = StateStoreAccessor()
    killed_try(store, "clickatell_default", "hello", NUMBERS[:3], {})  # one batch of three, no answer
    requests_mock.post(
        CLICKATELL_MESSAGES,
        json={"messages": [{"apiMessageId": f"id{n[-2:]}", "accepted": True, "to": n[1:]} for n in NUMBERS[3:]]},
    )
    from airflow_provider_sms.operators.clickatell import ClickatellSendMessageOperator

    op = ClickatellSendMessageOperator(task_id="t", to=NUMBERS, message="hello")
    with pytest.raises(AirflowFailException, match="3 recipient\\(s\\) in doubt") as failed:
        run_try(op, store, 2)
    assert "resend_in_doubt=True" in str(failed.value)
    (request,) = requests_mock.request_history  # Clickatell has no status query: nothing asked
    assert request.json()["to"] == [n[1:] for n in NUMBERS[3:]]  # the wire: only the seven never tried
    again = ClickatellSendMessageOperator(task_id="t", to=NUMBERS, message="hello", resend_in_doubt=True)
    requests_mock.post(
        CLICKATELL_MESSAGES,
        json={"messages": [{"apiMessageId": f"id{n[-2:]}", "accepted": True, "to": n[1:]} for n in NUMBERS[:3]]},
    )
    result, _ti = run_try(again, store, 3)
    assert requests_mock.request_history[-1].json()["to"] == [n[1:] for n in NUMBERS[:3]]
    assert result["in_doubt"] == [] and sorted(a["to"] for a in result["accepted"]) == NUMBERS


@pytest.mark.parametrize("latency", [0.0, 0.01])
def test_no_request_goes_out_before_its_claim_is_written_writes_are_batched_and_in_doubt_stays_in_the_pool(
    make_conn: Any, requests_mock: Any, latency: float
) -> None:
    import time

    from airflow_provider_sms.core.delivery import send_once
    from airflow_provider_sms.hooks import get_sms_hook

    make_conn("cw", "cloudware")
    events: list[tuple[str, str]] = []
    lock = threading.Lock()
    most_in_doubt = [0]

    class Recording(MemoryStore):
        def put(self, index: int, chunk: dict[str, Any]) -> None:
            with lock:
                events.extend(("claimed", n) for numbers in (chunk.get("claim") or {}).values() for n in numbers)
            super().put(index, chunk)
            # what a retry would hold in doubt if the worker died right after this write
            most_in_doubt[0] = max(most_in_doubt[0], SendLedger(self).view().in_doubt())

    def answer(request: Any, context: Any) -> dict[str, Any]:
        with lock:
            events.append(("sent", "+" + request.json()["to"]))
        time.sleep(latency)
        return {"status": "success", "data": {"id": "x"}}

    requests_mock.post(CLOUDWARE_SEND, json=answer)
    numbers = [f"+2348012{i:06d}" for i in range(200)]
    store = Recording()
    hook = get_sms_hook("cw", max_workers=8)
    ledger = SendLedger(store)
    result = send_once(ledger, numbers, "hi", lambda todo: hook.send_sms(todo, "hi"), provider="cloudware")
    assert len(result.accepted) == 200
    claimed_at = {n: i for i, (kind, n) in enumerate(events) if kind == "claimed"}
    sent_at = {n: i for i, (kind, n) in enumerate(events) if kind == "sent"}
    assert sent_at.keys() == claimed_at.keys() == set(numbers)
    assert all(claimed_at[n] < sent_at[n] for n in numbers)
    assert 1 <= most_in_doubt[0] <= 8  # never more than the requests in flight: 8 threads x 1 message
    assert store.writes <= 200 // 2 + 3  # one write per 2 requests or more, never one per message
    view = SendLedger(store).view()
    assert all(view.of("hi")[n].accepted == {"message_id": "x", "conn_id": "cw"} for n in numbers)
    assert view.in_doubt() == 0 and view.stats_of("hi").requests == 200 == result.requests


def test_the_merged_result_counts_every_tries_requests(make_conn: Any, requests_mock: Any) -> None:
    make_conn("cw", "cloudware")
    store = StateStoreAccessor()
    outage = {"on": True}

    def answer(request: Any, context: Any) -> dict[str, Any]:
        if outage["on"] and "+" + request.json()["to"] in NUMBERS[6:]:
            context.status_code = 503
            return {"message": "down"}
        return {"status": "success", "data": {"id": "x"}}

    requests_mock.post(CLOUDWARE_SEND, json=answer)

    def op() -> SendSmsOperator:
        return SendSmsOperator(task_id="t", sms_conn_id="cw", to=NUMBERS, message="hi", max_workers=1)

    ti = TI(1)
    with pytest.raises(SmsError):
        op().execute({"ti": ti, "task_state_store": store})
    first_try = len(requests_mock.request_history)
    assert ti.pushed["return_value"]["requests"] == first_try == 10
    outage["on"] = False
    result, _ti = run_try(op(), store, 2)
    assert len(requests_mock.request_history) == first_try + 4  # the retry: only the four left out
    assert result["requests"] == first_try + 4  # both tries' requests in the merged result
    again, _ti = run_try(op(), store, 3)  # a third try (a clear) sends nothing and counts the same
    assert again["requests"] == first_try + 4 and len(requests_mock.request_history) == first_try + 4


@pytest.mark.parametrize(
    ("text", "parts", "encoding"),
    [("x" * 200, 2, "GSM-7"), ("hello there", 1, "GSM-7"), ("\u00e9t\u00e9 \u2713", 1, "UCS-2")],
)
def test_the_ledger_keeps_parts_encoding_and_the_estimated_cost_per_text_never_the_text(
    make_conn: Any, requests_mock: Any, text: str, parts: int, encoding: str
) -> None:
    from airflow_provider_sms.core.delivery import send_once
    from airflow_provider_sms.hooks import get_sms_hook

    make_conn("cw", "cloudware", prices={"NG": 0.05, "default": 0.1})
    make_conn("unpriced", "cloudware")
    requests_mock.post(CLOUDWARE_SEND, json={"status": "success", "data": {"id": "x"}})
    to = [*NUMBERS[:3], "+447911123456"]  # three Nigerian numbers and a British one (the default price)
    for conn_id in ("cw", "unpriced"):
        store = MemoryStore()
        send = get_sms_hook(conn_id, max_workers=2).send_sms
        result = send_once(SendLedger(store), to, text, lambda todo, send=send: send(todo, text), provider="cloudware")
        assert result.segments == parts * 4
        stats = SendLedger(store).view().stats_of(text)
        assert (stats.parts, stats.encoding, stats.accepted, stats.requests) == (parts, encoding, 4, 4)
        if conn_id == "cw":
            assert stats.cost == pytest.approx((3 * 0.05 + 0.1) * parts) and stats.unpriced == 0
        else:
            assert stats.cost is None  # no prices extra: no estimate
        assert text not in json.dumps(store.chunks)


def test_a_retry_that_sends_nothing_still_reports_the_parts_of_earlier_tries(
    make_conn: Any, requests_mock: Any
) -> None:
    make_conn("cw", "cloudware")
    requests_mock.post(CLOUDWARE_SEND, json={"status": "success", "data": {"id": "x"}})
    store = StateStoreAccessor()
    text = "y" * 170  # two parts
    run_try(SendSmsOperator(task_id="t", sms_conn_id="cw", to=NUMBERS[:2], message=text), store, 1)
    result, _ti = run_try(SendSmsOperator(task_id="t", sms_conn_id="cw", to=NUMBERS[:2], message=text), store, 2)
    assert len(requests_mock.request_history) == 2
    assert (result["segments"], result["encoding"], result["requests"]) == (4, "GSM-7", 2)


def test_a_ledger_that_cannot_record_a_claim_sends_nothing(make_conn: Any, requests_mock: Any) -> None:
    make_conn("cw", "cloudware")
    requests_mock.post(CLOUDWARE_SEND, json={"status": "success", "data": {"id": "x"}})
    store = StateStoreAccessor()
    store.fail_writes = True
    op = SendSmsOperator(task_id="t", sms_conn_id="cw", to=NUMBERS[:3], message="hi")
    with pytest.raises(SmsError, match="a retry sends only to them"):
        run_try(op, store, 1)
    assert requests_mock.request_history == []


def test_a_failed_ledger_write_hides_none_of_the_writes_after_it() -> None:
    """A later try reads chunks up to the first missing number: a write that failed must not leave a gap
    in front of the writes that succeeded after it (their claims would be resent: texts twice)."""

    class FlakyStore(MemoryStore):
        fail_next = False

        def put(self, index: int, chunk: dict[str, Any]) -> None:
            if self.fail_next:
                self.fail_next = False
                raise ConnectionError("API server unreachable")
            super().put(index, chunk)

    store = FlakyStore()
    ledger = SendLedger(store)
    ledger.note("first", 1)
    store.fail_next = True
    with pytest.raises(ConnectionError):
        ledger.note("lost", 2)
    ledger.note("third", 3)
    assert sorted(store.chunks) == [0, 1]
    assert SendLedger(store, try_number=2).view().notes == {"first": 1, "third": 3}


def test_cellcast_batches_resume_per_recipient(make_conn: Any, requests_mock: Any) -> None:
    make_conn("cc", "cellcast")
    store = StateStoreAccessor()
    au = [f"+6140000000{i}" for i in range(4)]
    requests_mock.post(CELLCAST_GATEWAY, json=cellcast_queued(*(n[3:] for n in au[:2])))
    op = SendSmsOperator(task_id="t", sms_conn_id="cc", to=au[:2], message="hi")
    run_try(op, store, 1)
    requests_mock.post(CELLCAST_GATEWAY, json=cellcast_queued(*(n[3:] for n in au[2:])))
    result, _ti = run_try(SendSmsOperator(task_id="t", sms_conn_id="cc", to=au, message="hi"), store, 2)
    assert requests_mock.request_history[-1].json()["contacts"] == au[2:]  # the wire: only the two new ones
    assert sorted(a["to"] for a in result["accepted"]) == au


def test_each_text_of_a_personalized_send_has_its_own_entries() -> None:
    store = MemoryStore()
    ledger = SendLedger(store)
    journal = ledger.journal("first text", "c")
    journal.begin([["+1"]], 1)
    journal.before(0)
    journal.end()
    view = SendLedger(store).view()
    assert view.of("first text")["+1"].in_doubt and view.of("second text") == {}
    assert text_key("first text") in str(store.chunks) and "first text" not in str(store.chunks)  # never the text


def test_a_write_split_over_chunks_keeps_each_claimed_numbers_request_reference() -> None:
    from airflow_provider_sms.core.results import SendResult
    from airflow_provider_sms.state.ledger import CHUNK_ENTRIES

    store = MemoryStore()
    journal = SendLedger(store).journal("hi", "ck")
    first = [f"+614{i:08d}" for i in range(600)]
    second = [f"+614{i:08d}" for i in range(600, 1200)]
    journal.begin([first, second], 1)
    journal.before(0, "ref-a")
    journal.after(0, SendResult("x", accepted=[{"to": n, "message_id": f"m{n}"} for n in first], requests=1))
    journal.before(1, "ref-b")  # 600 outcomes, then the 600 claimed: more than one chunk holds
    assert len(store.chunks) == 3 and all(
        sum(len(rows) for kind in ("ok", "no", "claim") for rows in chunk.get(kind, {}).values()) <= CHUNK_ENTRIES
        for chunk in store.chunks.values()
    )
    view = SendLedger(store).view()
    people = view.of("hi")
    assert all(people[n].accepted == {"message_id": f"m{n}", "conn_id": "ck"} for n in first)
    assert {people[n].ref for n in second} == {"ref-b"} and all(people[n].in_doubt for n in second)
    assert view.in_doubt() == 600 and view.stats_of("hi").requests == 2  # the answered one, the one out


def test_where_the_ledger_lives() -> None:
    accessor = StateStoreAccessor()
    ti = type("TI", (), {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": 3, "try_number": 2})()
    on_33 = ledger_for({"ti": ti, "task_state_store": accessor})
    assert on_33 is not None and isinstance(on_33.store, TaskStateStore) and on_33.try_number == 2
    on_33.write({"claim": {"k": ["+1"]}})
    assert list(accessor.values) == [f"{KEY}/0"]
    before_33 = ledger_for({"ti": ti})
    assert before_33 is not None and isinstance(before_33.store, VariableStore)
    other_index = VariableStore(("d", "r", "t", 4))
    assert before_33.store.prefix != other_index.prefix  # the key includes dag, run, task and map index
    assert ledger_for({}) is None


def test_in_a_real_run_airflow_retries_an_outage_and_the_retry_texts_only_the_rest(
    airflow_db: None, make_conn: Any, sandbox: Any
) -> None:
    from collections import Counter

    from airflow_provider_sms.sandbox.faults import Fault
    from tests.test_example_dags import load_dag, xcom_value

    make_conn("cloudware_default", "cloudware", host=sandbox.url)
    dag = load_dag("cloudware_queue")
    task = dag.get_task("queue_newsletter")
    task.retries, task.retry_delay, task.max_workers = 2, timedelta(seconds=0), 1
    # the first recipient meets a 503 on every attempt urllib3 makes (1 + 3 retries); the others go through
    sandbox.faults.add(Fault("POST", "/v1/sms/queue", count=4, status=503))
    run = dag.test()  # the real task state store, through the Task SDK, and Airflow's own retry
    tries = {ti.task_id: (ti.state, ti.try_number) for ti in run.get_task_instances()}
    assert tries["queue_newsletter"] == ("success", 2)
    texts = Counter(row["phone"] for row in sandbox.store.all(provider="cloudware") if row["direction"] == "out")
    assert texts == {"+2348012345678": 1, "+2348012345679": 1, "+2348012345680": 1}
    result = xcom_value(run, "queue_newsletter")
    assert sorted(a["to"] for a in result["accepted"]) == sorted(texts)  # all tries in one result
    assert result["rejected"] == [] and result["in_doubt"] == []
    assert result["segments"] == 3 and result["encoding"] == "GSM-7"
    assert_the_ledger_is_bounded_and_goes_with_its_run(run)


def assert_the_ledger_is_bounded_and_goes_with_its_run(run: Any) -> None:
    """The ledger's rows: numbered chunks that expire (3.3) or are swept (2.11), gone with their run."""
    from datetime import datetime, timezone

    from airflow.models import DagRun
    from airflow.utils.session import create_session

    try:
        from airflow.models.task_state_store import TaskStateStoreModel
    except ImportError:  # Airflow 2.11: Variables, swept
        from airflow.models import Variable

        from airflow_provider_sms.state.ledger import VariableStore, sweep_variable_ledgers

        # this run's ledger only: other tests' runs (still there) keep theirs
        prefix = VariableStore((run.dag_id, run.run_id, "queue_newsletter", -1)).prefix
        with create_session() as session:
            keys = [v.key for v in session.query(Variable).filter(Variable.key.like(f"{prefix}%"))]
            assert keys and all(len(k) < 250 for k in keys)
            session.query(DagRun).filter(DagRun.run_id == run.run_id, DagRun.dag_id == run.dag_id).delete()
        assert sweep_variable_ledgers() >= 1
        with create_session() as session:
            left = session.query(Variable).filter(Variable.key.in_(keys)).count()
        assert left == 0
        return
    with create_session() as session:
        rows = session.query(TaskStateStoreModel).filter(TaskStateStoreModel.run_id == run.run_id).all()
        assert rows and {r.key.rsplit("/", 1)[0] for r in rows} == {"sms_send_ledger"}
        in_29_days = datetime.now(timezone.utc) + timedelta(days=29)
        assert all(r.expires_at is not None and r.expires_at > in_29_days for r in rows)
        assert all("newsletter" not in r.value for r in rows)  # never the text
        session.query(DagRun).filter(DagRun.run_id == run.run_id, DagRun.dag_id == run.dag_id).delete()
    with create_session() as session:
        assert session.query(TaskStateStoreModel).filter(TaskStateStoreModel.run_id == run.run_id).count() == 0


@pytest.mark.parametrize(("retries", "try_number", "retried"), [(2, 1, True), (2, 3, False), (0, 1, False)])
def test_with_fail_on_rejected_off_an_outage_is_retried_only_while_retries_are_left(
    make_conn: Any, requests_mock: Any, retries: int, try_number: int, retried: bool
) -> None:
    make_conn("cw", "cloudware")

    def answer(request: Any, context: Any) -> dict[str, Any]:
        if request.json()["to"] == NUMBERS[1][1:]:
            context.status_code = 503
            return {"message": "down"}
        return {"status": "success", "data": {"id": "x"}}

    requests_mock.post(CLOUDWARE_SEND, json=answer)
    op = SendSmsOperator(
        task_id="t", sms_conn_id="cw", to=NUMBERS[:2], message="hi", fail_on_rejected=False, retries=retries
    )
    if retried:
        with pytest.raises(SmsError, match="a retry sends only to them"):
            run_try(op, StateStoreAccessor(), try_number)
    else:  # the last try: the partial result is the task's result, as fail_on_rejected=False asks
        result, _ti = run_try(op, StateStoreAccessor(), try_number)
        assert [a["to"] for a in result["accepted"]] == [NUMBERS[0]]
        assert [r["code"] for r in result["rejected"]] == ["provider_unavailable"]


def test_a_sweep_asks_for_dag_runs_once_whatever_the_number_of_ledgers(airflow_db: None) -> None:
    airflow = pytest.importorskip("airflow")
    if not airflow.__version__.startswith("2."):
        pytest.skip("Variable ledgers are swept by workers on Airflow 2.11 (3.3 keeps them in the task state store)")
    import uuid
    from datetime import datetime, timezone

    import sqlalchemy as sa
    from airflow.models import DagRun, Variable
    from airflow.settings import engine
    from airflow.utils.session import create_session

    from airflow_provider_sms.state.ledger import sweep_variable_ledgers

    dag_id = f"sweep_{uuid.uuid4().hex[:8]}"
    now = datetime.now(timezone.utc)
    with create_session() as session:
        for i, run_id in enumerate(("live", "also_live")):
            session.add(DagRun(dag_id=dag_id, run_id=run_id, run_type="manual", execution_date=now + timedelta(i)))
    stores = {run: VariableStore((dag_id, run, "t", -1)) for run in ("live", "also_live", "deleted", "old")}
    for store in stores.values():
        for index in range(3):
            store.put(index + 1, {"claim": {"k": ["+1"]}})  # chunk 0 would sweep on its own
    with create_session() as session:  # "old" was written 40 days ago (its run is live)
        session.add(DagRun(dag_id=dag_id, run_id="old", run_type="manual", execution_date=now + timedelta(5)))
        for row in session.query(Variable).filter(Variable.key.like(f"{stores['old'].prefix}%")):
            value = json.loads(row.val)
            row.val = json.dumps({**value, "written_at": (now - timedelta(days=40)).isoformat()})
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        removed = sweep_variable_ledgers(limit=100_000)
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert removed >= 6  # "deleted" and "old", three chunks each (other tests' stale ledgers may go too)
    assert len([s for s in statements if "FROM dag_run" in s]) == 1  # one question for every ledger's run
    assert len([s for s in statements if s.lstrip().upper().startswith("DELETE")]) == 1
    with create_session() as session:
        left = {
            key.split("/")[1]
            for (key,) in session.query(Variable.key).filter(Variable.key.like(f"{VARIABLE_PREFIX}%"))
            if any(key.startswith(store.prefix) for store in stores.values())
        }
    assert left == {stores["live"].prefix.split("/")[1], stores["also_live"].prefix.split("/")[1]}
