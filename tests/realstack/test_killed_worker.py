"""A worker killed mid-send, then Airflow's retry, on a real Airflow (LocalExecutor, Postgres): per
recipient exactly one text, for Cloudware and for Cellcast; what stays in doubt is reported.

The sandbox is slowed with its faults API so that a 500-recipient send takes about 20 s; the task's own
process (``airflow worker -- <ti id>``, a child of the executor's worker) is SIGKILLed midway by its
pid, and Airflow's retry runs the send again. The retry reads the send ledger (Airflow 3.3's task state
store, written through the execution API by the killed try), asks the provider about the requests
that were in flight (Cloudware's listing, Cellcast's sent-message list), and sends only to the rest.
What the killed try left in doubt, read from the ledger's rows in Postgres, is at most the requests in
flight: Cloudware's pool of 16 one-message requests; Cellcast's one request of 500 (killed while it is
in flight, all 500 are in doubt until Cellcast's list says whether it took them).
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.realstack import require_newest_airflow

require_newest_airflow()

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

from demo.real_airflow import RealAirflow  # noqa: E402
from tests.deadline import wait_for  # noqa: E402

RECIPIENTS = 500
CLOUDWARE_TO = [f"+2348{i:09d}" for i in range(RECIPIENTS)]
CELLCAST_TO = [f"+614{i:08d}" for i in range(RECIPIENTS)]

DAG_SOURCE = """
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_sms.operators.send import SendSmsOperator

for provider, to in (("cloudware", {cloudware!r}), ("cellcast", {cellcast!r})):
    with DAG(f"killed_{{provider}}", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
        SendSmsOperator(
            task_id="send",
            sms_conn_id=f"{{provider}}_default",
            to=to,
            message="The nightly load finished",
            retries=2,
            retry_delay=timedelta(seconds=1),
        )
    globals()[f"killed_{{provider}}"] = dag
"""


@pytest.fixture(scope="module")
def stack(fresh_postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RealAirflow, Any]]:
    from airflow_provider_sms.sandbox.server import SandboxServer

    dags = tmp_path_factory.mktemp("dags")
    (dags / "killed_worker.py").write_text(DAG_SOURCE.format(cloudware=CLOUDWARE_TO, cellcast=CELLCAST_TO))
    with SandboxServer() as sandbox:
        connections = {
            f"{provider}_default": {"conn_type": provider, "host": sandbox.url, "password": "t"}
            for provider in ("cloudware", "cellcast")
        }
        real = RealAirflow(
            Path(tmp_path_factory.mktemp("airflow")), dags, connections=connections, sql_alchemy_conn=fresh_postgres_url
        ).start()
        try:
            real.wait_until_ready(["killed_cloudware", "killed_cellcast"], timeout=300)
            yield real, sandbox
        finally:
            real.stop()


def task_process(real: RealAirflow, dag_id: str, run_id: str) -> Any:
    """The running task's own process: titled ``airflow worker -- <ti id>``, descended from this Airflow."""
    import psutil

    ti = real.http.get(f"{real.url}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/send", timeout=30).json()
    ours = {p.pid for p in real.processes}
    for process in psutil.process_iter(["cmdline"]):
        title = " ".join(process.info["cmdline"] or [])
        if f"airflow worker -- {ti['id']}" in title and ours & {p.pid for p in process.parents()}:
            return process
    return None


def left_in_doubt(database_url: str, dag_id: str, run_id: str) -> int:
    """Recipients the killed first try left in doubt: its chunks of the ledger (the rows the execution API
    wrote to Airflow's ``task_state_store``), read with the ledger's own reader."""
    import json

    import sqlalchemy as sa

    from airflow_provider_sms.state.ledger import KEY, MemoryStore, SendLedger

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT key, value FROM task_state_store WHERE dag_id = :d AND run_id = :r AND task_id = :t"),
                {"d": dag_id, "r": run_id, "t": "send"},
            ).all()
    finally:
        engine.dispose()
    chunks = {int(key.rsplit("/", 1)[1]): json.loads(value) for key, value in rows if key.startswith(f"{KEY}/")}
    first = MemoryStore()
    while len(first.chunks) in chunks and chunks[len(first.chunks)].get("try") == 1:
        first.chunks[len(first.chunks)] = chunks[len(first.chunks)]
    assert first.chunks, "the killed try wrote no ledger"
    return SendLedger(first).view().in_doubt()


def texts(sandbox: Any, provider: str) -> Counter[str]:
    return Counter(m["phone"] for m in sandbox.store.all(provider=provider) if m["direction"] == "out")


def run_killed(real: RealAirflow, sandbox: Any, provider: str, endpoint: str, latency_ms: float, midway: Any) -> Any:
    from airflow_provider_sms.sandbox.faults import Fault

    sandbox.reset()
    sandbox.faults.add(Fault("POST", endpoint, count=None, latency_ms=latency_ms))
    run_id = real.trigger(f"killed_{provider}")
    victim = wait_for(lambda: task_process(real, f"killed_{provider}", run_id), "the task's process")
    wait_for(midway, "the send to be midway", timeout=60)
    os.kill(victim.pid, signal.SIGKILL)  # the task process only, by its pid: the executor and Airflow live on
    sent_when_killed = sum(texts(sandbox, provider).values())
    sandbox.faults.clear()  # the retry runs at full speed
    state = real.wait_for_run(f"killed_{provider}", run_id, timeout=240)
    ti = real.http.get(f"{real.url}/api/v2/dags/killed_{provider}/dagRuns/{run_id}/taskInstances/send", timeout=30)
    xcom = real.http.get(
        f"{real.url}/api/v2/dags/killed_{provider}/dagRuns/{run_id}/taskInstances/send/xcomEntries/return_value",
        timeout=30,
    )
    return state, ti.json()["try_number"], sent_when_killed, xcom.json()["value"], run_id


def test_cloudware_killed_mid_send_then_retried_texts_each_recipient_once(
    stack: tuple[RealAirflow, Any], fresh_postgres_url: str
) -> None:
    real, sandbox = stack
    # 16 requests at a time, 640 ms each: 500 recipients take about 20 s
    state, tries, sent_when_killed, result, run_id = run_killed(
        real, sandbox, "cloudware", "/v1/sms/send", 640, lambda: sum(texts(sandbox, "cloudware").values()) >= 150
    )
    assert 150 <= sent_when_killed < RECIPIENTS  # killed midway
    assert (state, tries) == ("success", 2)
    got = texts(sandbox, "cloudware")
    assert set(got) == set(CLOUDWARE_TO) and max(got.values()) == 1  # nobody twice, nobody left out
    assert result["in_doubt"] == [] and len(result["accepted"]) == RECIPIENTS  # one result for both tries
    doubt = left_in_doubt(fresh_postgres_url, "killed_cloudware", run_id)
    assert 1 <= doubt <= 16  # at most the requests in flight (16 threads x 1 message), all settled by asking
    assert sandbox.faults.stats()["requests"].get("GET /v1/sms/messages")  # the retry asked first
    print(f"cloudware: killed after {sent_when_killed} texts; {doubt} in doubt in the ledger, 0 after asking")


def test_cellcast_killed_mid_request_then_retried_texts_each_recipient_once(
    stack: tuple[RealAirflow, Any], fresh_postgres_url: str
) -> None:
    real, sandbox = stack

    def in_flight() -> bool:
        return bool(sandbox.faults.stats()["requests"].get("POST /api/v1/gateway"))

    # one request for the 500 (Cellcast takes 1,000 a call), held 20 s by the sandbox: killed meanwhile
    state, tries, _sent, result, run_id = run_killed(real, sandbox, "cellcast", "/api/v1/gateway", 20_000, in_flight)
    assert (state, tries) == ("success", 2)
    got = texts(sandbox, "cellcast")
    assert set(got) == set(CELLCAST_TO) and max(got.values()) == 1  # nobody twice, nobody left out
    assert result["in_doubt"] == [] and len(result["accepted"]) == RECIPIENTS
    assert sandbox.faults.stats()["requests"].get("GET /api/v2/report/message")  # the retry asked first
    assert left_in_doubt(fresh_postgres_url, "killed_cellcast", run_id) == RECIPIENTS  # one request's worth
