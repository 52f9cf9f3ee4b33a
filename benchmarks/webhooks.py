"""Webhook calls recorded as asset events by a real Airflow API server, with many earlier events on record.

Starts a throwaway Postgres 15 (SQLite where Postgres is not installed), an Airflow API server with
``--api-workers`` workers and a DAG processor (a DAG scheduled on ``inbound_sms_asset`` makes the asset
exist), writes ``--existing`` earlier events and their receipts straight into the database (what a
busy connection has after a week), then sends ``--calls`` Cloudware ``message_received`` calls one after
another (serialized, as the cost of one call is what is measured), ``--repeat`` of them copies of an
earlier call (a provider retrying). Each call's latency runs from sending to the 200, which comes after
the event is committed. Afterwards the asset's events are counted in the database: every distinct
message must be there once. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from demo.real_airflow import RealAirflow  # noqa: E402

SECRET = "bench-webhook-secret-0123456789"  # noqa: S105
URI = "sms://cloudware_default/inbound"
DAG = """
import pendulum
from airflow.sdk import DAG, task
from airflow_provider_sms.assets import inbound_sms_asset

with DAG("bench_replies", schedule=[inbound_sms_asset("cloudware_default")],
         start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    @task
    def noop():
        pass

    noop()
"""


def payload(i: int) -> dict[str, Any]:
    return {
        "type": "message_received",
        "from": f"614000{i % 100000:05d}",
        "to": "61400000000",
        "message": f"reply {i}",
        "message_id": f"bench-{i}",
        "created_at": "2030-01-01T09:00:00Z",
        "sent_at": "2030-01-01T09:00:00Z",
    }


def seed(engine: Any, existing: int) -> None:
    """``existing`` earlier events on the asset, each with its receipt, written in bulk."""
    import sqlalchemy as sa

    from airflow_provider_sms.state.webhook_receipts import RECEIPTS, digest

    with engine.begin() as connection:
        asset_id = connection.execute(sa.text("SELECT id FROM asset WHERE uri = :uri"), {"uri": URI}).scalar_one()
        for start in range(0, existing, 10_000):
            events = []
            for i in range(start, min(start + 10_000, existing)):
                extra = {"conn_id": "cloudware_default", "message_id": f"seed-{i}", "dedupe_key": f"inbound:seed-{i}"}
                events.append({"asset_id": asset_id, "extra": json.dumps(extra)})
            connection.execute(
                sa.text(
                    "INSERT INTO asset_event (asset_id, extra, timestamp) VALUES (:asset_id, :extra, CURRENT_TIMESTAMP)"
                ),
                events,
            )
        now = datetime.now(timezone.utc)
        for start in range(0, existing, 10_000):
            receipts = [
                {
                    "kind": "inbound",
                    "key": digest("cloudware_default", "inbound", "id", f"seed-{i}"),
                    "subject": digest("cloudware_default", f"seed-{i}"),
                    "conn_id": "cloudware_default",
                    "received_at": now,
                }
                for i in range(start, min(start + 10_000, existing))
            ]
            connection.execute(sa.insert(RECEIPTS), receipts)
        if engine.dialect.name == "postgresql":
            connection.execute(sa.text("ANALYZE"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--existing", type=int, default=100_000)
    parser.add_argument("--repeat", type=float, default=0.1)
    parser.add_argument("--api-workers", type=int, default=4)
    parser.add_argument("--sqlite", action="store_true", help="use Airflow's SQLite database even if Postgres is here")
    args = parser.parse_args()

    import sqlalchemy as sa

    from tests.realstack.postgres import PostgresServer, find_bindir

    home = Path(tempfile.mkdtemp(prefix="sms-webhook-bench-"))
    dags = home / "dags"
    dags.mkdir()
    (dags / "bench_replies.py").write_text(DAG)
    postgres = None if args.sqlite or find_bindir() is None else PostgresServer().start()
    database_url = postgres.create_database("airflow") if postgres else f"sqlite:///{home / 'airflow' / 'airflow.db'}"
    conn = {"conn_type": "cloudware", "password": "bench-token", "extra": {"webhook_secret": SECRET}}
    real = RealAirflow(
        home / "airflow",
        dags,
        connections={"cloudware_default": conn},
        components=("api-server", "dag-processor"),
        env={"AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"},
        sql_alchemy_conn=database_url,
        api_workers=args.api_workers if postgres else 1,
    )
    real.start()
    try:
        real.wait_until_ready(["bench_replies"], timeout=300)
        url = f"{real.url}/sms/webhooks/cloudware_default/inbound?secret={SECRET}"
        http = requests.Session()
        for worker in range(args.api_workers * 4):  # warm every worker up (and create the receipts table)
            http.post(url, json=payload(10**6 + worker), timeout=30).raise_for_status()
        engine = sa.create_engine(database_url)
        seed(engine, args.existing)
        rng = random.Random(7)  # noqa: S311 - a repeatable load pattern, not a secret
        plan: list[int] = []
        for n in range(args.calls):
            repeat = plan and rng.random() < args.repeat
            plan.append(rng.choice(plan) if repeat else n)
        latencies: list[float] = []
        failures: list[str] = []
        t0 = time.monotonic()
        for i in plan:
            started = time.monotonic()
            try:
                answer = http.post(url, json=payload(i), timeout=30)
                if answer.status_code != 200:
                    failures.append(str(answer.status_code))
            except requests.RequestException as err:
                failures.append(type(err).__name__)
            latencies.append(time.monotonic() - started)
        elapsed = time.monotonic() - t0
        with engine.connect() as connection:
            keys = list(
                connection.execute(
                    sa.select(sa.text("e.extra"))
                    .select_from(sa.text("asset_event e JOIN asset a ON a.id = e.asset_id"))
                    .where(sa.text("a.uri = :uri")),
                    {"uri": URI},
                ).scalars()
            )
        unique = {f"inbound:bench-{i}" for i in plan}
        every = [(k if isinstance(k, dict) else json.loads(k)).get("dedupe_key") for k in keys]
        mine = [k for k in every if k in unique]
        latencies.sort()
        print(
            json.dumps(
                {
                    "database": engine.dialect.name,
                    "api_workers": args.api_workers if postgres else 1,
                    "existing_events": args.existing,
                    "calls": args.calls,
                    "repeated_calls": args.calls - len(set(plan)),
                    "achieved_per_s": round(args.calls / elapsed, 1),
                    "latency_median_ms": round(statistics.median(latencies) * 1000, 1),
                    "latency_p95_ms": round(latencies[int(len(latencies) * 0.95) - 1] * 1000, 1),
                    "latency_max_ms": round(latencies[-1] * 1000, 1),
                    "failed_calls": len(failures),
                    "lost": len(unique - set(mine)),
                    "duplicated": len(mine) - len(set(mine)),
                    "events": len(mine),
                }
            )
        )
    finally:
        real.stop()
        if postgres:
            postgres.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
