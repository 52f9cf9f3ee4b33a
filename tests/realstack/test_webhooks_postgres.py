"""Webhooks record each reply and report exactly once on a real Postgres, through ``airflow api-server
--workers 4``: concurrent copies of one call, many distinct calls in copies, and a 10-second database
outage that the provider's retries ride out. One Postgres database and one Airflow (API server and DAG
processor, which creates the assets) serve the module; events are counted in the database itself.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.realstack import require_newest_airflow
from tests.realstack.postgres import PostgresServer

pytest.importorskip("airflow.api_fastapi", reason="the webhook receiver is an Airflow 3 plugin")
require_newest_airflow()

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

from demo.real_airflow import RealAirflow  # noqa: E402

SECRET = "realstack-webhook-secret-0123456789"
CONN = "cloudware_default"
DAG = """
import pendulum
from airflow.sdk import DAG, task
from airflow_provider_sms.assets import inbound_sms_asset, sms_status_asset

with DAG("pg_replies", schedule=[inbound_sms_asset("cloudware_default") | sms_status_asset("cloudware_default")],
         start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    @task
    def noop():
        pass

    noop()
"""


def reply(tag: str) -> dict[str, Any]:
    return {
        "type": "message_received",
        "from": "61400000001",
        "to": "61400000000",
        "message": f"reply {tag}",
        "message_id": f"pg-{tag}",
        "created_at": "2030-01-01T09:00:00Z",
        "sent_at": "2030-01-01T09:00:00Z",
    }


def report(tag: str) -> dict[str, Any]:
    return {
        "type": "message_sent",
        "to": "61400000001",
        "message_id": f"pg-out-{tag}",
        "sent_at": "2030-01-01T09:00:00Z",
    }


class Stack:
    def __init__(self, postgres: PostgresServer, database_url: str, airflow: RealAirflow) -> None:
        self.postgres = postgres
        self.airflow = airflow
        self.url = f"{airflow.url}/sms/webhooks/{CONN}/inbound?secret={SECRET}"
        import sqlalchemy as sa

        self.engine = sa.create_engine(database_url, pool_pre_ping=True)

    def events(self, kind: str) -> Counter[str]:
        """``dedupe_key`` -> how many asset events carry it, on the connection's ``kind`` asset."""
        import sqlalchemy as sa

        query = sa.text(
            "SELECT e.extra::json->>'dedupe_key' FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE a.uri = :uri"
        )
        with self.engine.connect() as connection:
            return Counter(str(k) for k in connection.execute(query, {"uri": f"sms://{CONN}/{kind}"}).scalars())


@pytest.fixture(scope="module")
def stack(
    postgres_server: PostgresServer, fresh_postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    dags = tmp_path_factory.mktemp("dags")
    (dags / "pg_replies.py").write_text(DAG)
    conn = {"conn_type": "cloudware", "password": "pg-token", "extra": {"webhook_secret": SECRET}}
    real = RealAirflow(
        Path(tmp_path_factory.mktemp("airflow")),
        dags,
        connections={CONN: conn},
        components=("api-server", "dag-processor"),
        sql_alchemy_conn=fresh_postgres_url,
        api_workers=4,
        env={"AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"},
    ).start()
    try:
        real.wait_until_ready(["pg_replies"], timeout=300)
        yield Stack(postgres_server, fresh_postgres_url, real)
    finally:
        real.stop()
        if not postgres_server.running:  # a failed outage test must not leave the session without Postgres
            postgres_server.start()


def deliver(url: str, body: dict[str, Any], deadline: float, answers: list[int] | None = None) -> dict[str, Any]:
    """POST as a provider does: on a 503 or no answer, call again after a second, until a 200 or ``deadline``."""
    with requests.Session() as http:
        while True:
            try:
                answer = http.post(url, json=body, timeout=30)
                status = answer.status_code
            except requests.RequestException:
                status = 0
            if answers is not None:
                answers.append(status)
            if status == 200:
                return dict(answer.json())
            if status not in (0, 503) or time.monotonic() > deadline:
                raise AssertionError(f"the webhook answered {status}; the provider gives up")
            time.sleep(1)


def all_at_once(calls: list[Callable[[], dict[str, Any]]]) -> list[dict[str, Any]]:
    """Run every call on its own thread, released together."""
    gate = threading.Barrier(len(calls))

    def run(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        gate.wait(timeout=60)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_200_concurrent_copies_of_one_reply_are_one_event(stack: Stack) -> None:
    deadline = time.monotonic() + 120
    body = reply("same")
    answers = all_at_once([lambda: deliver(stack.url, body, deadline) for _ in range(200)])
    assert sum(a.get("recorded", 0) for a in answers) == 1
    assert sum(a.get("duplicates", 0) for a in answers) == 199
    assert stack.events("inbound")["inbound:pg-same"] == 1


def test_50_distinct_replies_in_4_concurrent_copies_are_50_events(stack: Stack) -> None:
    deadline = time.monotonic() + 120
    bodies = [reply(f"distinct-{i}") for i in range(50)] * 4
    answers = all_at_once([lambda body=body: deliver(stack.url, body, deadline) for body in bodies])
    assert sum(a.get("recorded", 0) for a in answers) == 50
    events = stack.events("inbound")
    assert {k: n for k, n in events.items() if "distinct" in k} == {f"inbound:pg-distinct-{i}": 1 for i in range(50)}


def test_a_delivery_report_in_concurrent_copies_is_one_status_event(stack: Stack) -> None:
    deadline = time.monotonic() + 120
    status_url = stack.url.replace("/inbound?", "/status?")
    answers = all_at_once([lambda: deliver(status_url, report("once"), deadline) for _ in range(50)])
    assert sum(a.get("recorded", 0) for a in answers) == 1
    assert stack.events("status")["status:pg-out-once:message_sent"] == 1


def test_50_calls_during_a_10_second_outage_are_50_events_none_lost_none_doubled(stack: Stack) -> None:
    statuses: list[int] = []
    stack.postgres.stop()
    outage_ends = time.monotonic() + 10
    try:
        deadline = time.monotonic() + 120
        with ThreadPoolExecutor(max_workers=50) as pool:
            futures = [pool.submit(deliver, stack.url, reply(f"outage-{i}"), deadline, statuses) for i in range(50)]
            time.sleep(max(0.0, outage_ends - time.monotonic()))  # the outage itself lasts 10 s by design
            refused_during_outage = len([s for s in statuses if s == 503])
            stack.postgres.start()
            answers = [f.result(timeout=150) for f in futures]
    finally:
        if not stack.postgres.running:
            stack.postgres.start()
    assert refused_during_outage >= 50  # every call met the outage first
    assert sum(a.get("recorded", 0) for a in answers) + sum(a.get("duplicates", 0) for a in answers) == 50
    events = stack.events("inbound")
    assert {k: n for k, n in events.items() if "outage" in k} == {f"inbound:pg-outage-{i}": 1 for i in range(50)}
