"""What waiting in several triggerers costs: inbox polls per interval, measured on a real Airflow with two triggerers.

Twenty ``AssetWatcher``s wait on one Cloudware inbox of the sandbox (half declared as
``InboundSmsEventTrigger``, half as ``MessageQueueTrigger(scheme="sms")`` when common.messaging is
installed), each for its own number. With ``[triggerer] capacity`` 10 the two triggerers run ten each.
The shared stream belongs to one triggerer process, so the inbox is read once per interval per
triggerer: two reads per interval, not twenty. Every reply still becomes exactly one asset event of
its own asset, fired by whichever triggerer runs its watcher.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.realstack import require_newest_airflow

require_newest_airflow()

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

from demo.real_airflow import RealAirflow  # noqa: E402
from tests.deadline import wait_for  # noqa: E402
from tests.realstack.postgres import PostgresServer  # noqa: E402

WAITERS = 20
TRIGGERERS = 2
INTERVAL = 2.0  # seconds between polls each watcher asks for
WINDOW = 40.0  # seconds of steady polling measured: 20 intervals
LISTING = "GET /v1/sms/messages"
NUMBERS = [f"+614000002{i:02d}" for i in range(WAITERS)]
MESSAGING = importlib.util.find_spec("airflow.providers.common.messaging") is not None

DAG_FILE = f"""
import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset, AssetAny, AssetWatcher

from airflow_provider_sms.triggers.inbound import InboundSmsEventTrigger

NUMBERS = {NUMBERS!r}
MESSAGING = {MESSAGING!r}


def watcher(i, number):
    if MESSAGING and i % 2:
        from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

        trigger = MessageQueueTrigger(
            scheme="sms", conn_id="cloudware_default", from_numbers=[number], poll_interval={INTERVAL}
        )
    else:
        trigger = InboundSmsEventTrigger("cloudware_default", from_numbers=[number], poll_interval={INTERVAL})
    return Asset(f"replies_{{i:02d}}", watchers=[AssetWatcher(name=f"replies_{{i:02d}}", trigger=trigger)])


with DAG(
    dag_id="many_waiters",
    schedule=AssetAny(*(watcher(i, n) for i, n in enumerate(NUMBERS))),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
):
    EmptyOperator(task_id="noop")
"""


@pytest.fixture(scope="module")
def stack(
    fresh_postgres_url: str, postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RealAirflow, Any, Any]]:
    from airflow_provider_sms.sandbox.server import SandboxServer

    dags = tmp_path_factory.mktemp("dags")
    (dags / "many_waiters.py").write_text(DAG_FILE)
    database = fresh_postgres_url.rsplit("/", 1)[1]

    def sql(query: str) -> list[list[str]]:
        out = postgres_server.psql(query, database=database)
        return [line.split("|", 1) for line in out.splitlines() if line]

    with SandboxServer() as sandbox:
        conn = {"conn_type": "cloudware", "host": sandbox.url, "password": "t", "extra": {"country_code": "61"}}
        real = RealAirflow(
            Path(tmp_path_factory.mktemp("airflow")),
            dags,
            connections={"cloudware_default": conn},
            env={"AIRFLOW__TRIGGERER__CAPACITY": str(WAITERS // TRIGGERERS)},  # ten watchers in each
            sql_alchemy_conn=fresh_postgres_url,
            triggerers=TRIGGERERS,
        ).start()
        try:
            real.wait_until_ready(["many_waiters"], timeout=300)
            yield real, sandbox, sql
        finally:
            real.stop()


def test_n_triggerers_read_an_inbox_n_times_per_interval_and_each_reply_fires_once(
    stack: tuple[RealAirflow, Any, Any],
) -> None:
    real, sandbox, sql = stack

    def spread() -> list[int]:
        rows = sql("SELECT count(*) FROM trigger WHERE triggerer_id IS NOT NULL GROUP BY triggerer_id")
        return sorted(int(count) for (count,) in rows)

    wait_for(lambda: spread() == [10, 10], "ten watchers in each triggerer", timeout=240)
    polls = lambda: sandbox.faults.stats()["requests"].get(LISTING, 0)  # noqa: E731
    wait_for(lambda: polls() >= 2 * TRIGGERERS, "both triggerers polling", timeout=120)

    before, started = polls(), time.monotonic()
    wait_for(lambda: time.monotonic() - started >= WINDOW, f"a {WINDOW:g} s measuring window", timeout=WINDOW + 5)
    per_interval = (polls() - before) / ((time.monotonic() - started) / INTERVAL)
    print(f"\n{WAITERS} waiters on {TRIGGERERS} triggerers: {per_interval:.2f} inbox polls per {INTERVAL:g} s interval")
    assert per_interval <= TRIGGERERS + 0.25  # one shared poll per triggerer, not one per waiter (20)
    assert per_interval > TRIGGERERS - 1  # and each triggerer polls for its own waiters

    for number in NUMBERS:
        sandbox.store.add_message(direction="in", provider="cloudware", phone=number, text="yes", status="received")

    def events() -> list[list[str]]:
        return sql("SELECT a.name, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id ORDER BY a.name")

    wait_for(lambda: len(events()) >= WAITERS, "an asset event per reply", timeout=120)
    after = polls()
    wait_for(lambda: polls() >= after + 2 * TRIGGERERS, "more polls listing the same replies", timeout=60)
    fired = events()
    assert [name for name, _ in fired] == [f"replies_{i:02d}" for i in range(WAITERS)]  # each once
    for (_, extra), number in zip(fired, NUMBERS, strict=True):
        message = json.loads(extra)["payload"]["message"]
        assert (message["from_number"], message["text"]) == (number, "yes")
    logs = [(real.logs_dir / name).read_text() for name in ("triggerer.log", "triggerer-2.log")]
    assert all("Trigger fired event" in log for log in logs)  # both triggerers delivered replies
