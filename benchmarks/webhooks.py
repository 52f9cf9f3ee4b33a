"""Webhook calls recorded as asset events by a real Airflow API server, at a steady rate.

Starts an Airflow API server and DAG processor (a DAG scheduled on ``inbound_sms_asset`` makes the
asset exist), then sends Cloudware ``message_received`` calls at ``--rate`` a second for ``--seconds``,
``--repeat`` of them copies of an earlier call (a provider retrying). Each call's latency is measured
from sending to the 200, which comes after the event is committed. Afterwards the asset's events are
read back through the REST API: every distinct message must be there once. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from demo.real_airflow import RealAirflow  # noqa: E402

SECRET = "bench-webhook-secret-0123456789"  # noqa: S105
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
        "from": f"614000{i:05d}",
        "to": "61400000000",
        "message": f"reply {i}",
        "message_id": f"bench-{i}",
        "created_at": "2030-01-01T09:00:00Z",
        "sent_at": "2030-01-01T09:00:00Z",
    }


def read_events(real: RealAirflow) -> list[dict[str, Any]]:
    assets = real.http.get(f"{real.url}/api/v2/assets", params={"uri_pattern": "sms://cloudware_default"}, timeout=30)
    (asset,) = [a for a in assets.json()["assets"] if a["uri"] == "sms://cloudware_default/inbound"]
    events: list[dict[str, Any]] = []
    while True:
        page = real.http.get(
            f"{real.url}/api/v2/assets/events",
            params={"asset_id": asset["id"], "limit": 100, "offset": len(events)},
            timeout=30,
        ).json()["asset_events"]
        events += page
        if len(page) < 100:
            return events


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--repeat", type=float, default=0.1)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="sms-webhook-bench-"))
    dags = home / "dags"
    dags.mkdir()
    (dags / "bench_replies.py").write_text(DAG)
    conn = {"conn_type": "cloudware", "password": "bench-token", "extra": {"webhook_secret": SECRET}}
    real = RealAirflow(
        home / "airflow",
        dags,
        connections={"cloudware_default": conn},
        components=("api-server", "dag-processor"),
        env={"AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"},
    )
    real.start()
    try:
        real.wait_until_ready(["bench_replies"])
        url = f"{real.url}/sms/webhooks/cloudware_default/inbound?secret={SECRET}"
        requests.post(url, json=payload(10**6), timeout=30).raise_for_status()  # warm the worker up
        total = int(args.rate * args.seconds)
        rng = random.Random(7)  # noqa: S311 - a repeatable load pattern, not a secret
        plan: list[int] = []
        for n in range(total):
            repeat = plan and rng.random() < args.repeat
            plan.append(rng.choice(plan) if repeat else n)
        local = threading.local()
        latencies: list[float] = []
        failures: list[str] = []

        def call(i: int, due: float) -> None:
            time.sleep(max(0.0, due - time.monotonic()))
            session = getattr(local, "session", None) or requests.Session()
            local.session = session
            started = time.monotonic()
            try:
                answer = session.post(url, json=payload(i), timeout=30)
                if answer.status_code != 200:
                    failures.append(str(answer.status_code))
            except requests.RequestException as err:
                failures.append(type(err).__name__)
            latencies.append(time.monotonic() - started)

        t0 = time.monotonic() + 0.5
        with ThreadPoolExecutor(max_workers=32) as pool:
            for k, i in enumerate(plan):
                pool.submit(call, i, t0 + k / args.rate)
        elapsed = time.monotonic() - t0
        events = read_events(real)
        keys = [e["extra"]["dedupe_key"] for e in events if e["extra"].get("message_id") != f"bench-{10**6}"]
        unique = {f"inbound:bench-{i}" for i in plan}
        latencies.sort()
        print(
            json.dumps(
                {
                    "calls": total,
                    "repeated_calls": total - len(set(plan)),
                    "rate_per_s": args.rate,
                    "achieved_per_s": round(total / elapsed, 1),
                    "latency_median_ms": round(statistics.median(latencies) * 1000, 1),
                    "latency_p95_ms": round(latencies[int(len(latencies) * 0.95) - 1] * 1000, 1),
                    "latency_max_ms": round(latencies[-1] * 1000, 1),
                    "failed_calls": len(failures),
                    "lost": len(unique - set(keys)),
                    "duplicated": len(keys) - len(set(keys)),
                    "events": len(keys),
                }
            )
        )
    finally:
        real.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
