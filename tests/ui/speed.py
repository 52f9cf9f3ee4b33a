"""How fast the SMS page's JSON routes answer with 10,000 sends in the ledgers (run in a process of its own).

``python -m tests.ui.speed --home DIR [--db URL] [--sends N]`` migrates a fresh Airflow metadata
database (SQLite under DIR, or the given URL, e.g. a throwaway Postgres), seeds it in bulk as real runs
leave it, then times each route through Airflow's own API app (plugin mounted, simple auth manager, a
viewer's token) and prints one JSON object: ``{"seeded": {...}, "routes": {name: [seconds, ...]}}``.

Seeded: ``N`` sends (task instances over 100 DAG runs of 10 DAGs, their rows included), each to 1-3 recipients, their
ledger chunks written by the provider's own ``SendLedger``/``Journal`` (then bulk-inserted into
``task_state_store``, as the execution API stores them); a webhook delivery report for every other
accepted message; 2,000 replies recorded as asset events; 1,000 opt-outs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROUTES = {
    "outbox": "/sms/ui/api/outbox?conn_id=cloudware_default",
    "outbox_page_40": "/sms/ui/api/outbox?conn_id=cloudware_default&offset=1000",
    "outbox_dag_filter": "/sms/ui/api/outbox?conn_id=cloudware_default&dag_id=speed_dag_3",
    "outbox_status_filter": "/sms/ui/api/outbox?conn_id=cloudware_default&status=delivered",
    "inbox": "/sms/ui/api/inbox?conn_id=cloudware_default",
    "spend": "/sms/ui/api/spend?conn_id=cloudware_default",
    "opt_outs": "/sms/ui/api/opt-outs",
}
CONN = "cloudware_default"


def _chunks(index: int, numbers: list[str]) -> list[dict[str, Any]]:
    """The chunks a real send of one text to ``numbers`` writes (all accepted but the last of three)."""
    from airflow_provider_sms.state.ledger import MemoryStore, SendLedger
    from tests.ui.seed import Part

    class Priced(SendLedger):
        def prices(self, conn_id: str) -> Any:
            from decimal import Decimal

            return {"AU": Decimal("0.055"), "default": Decimal("0.08")}

    store = MemoryStore()
    journal = Priced(store).journal(f"text {index % 7}", CONN)
    journal.begin([numbers], width=1)
    journal.before(0)
    accepted = numbers if len(numbers) < 3 else numbers[:2]
    rejected = [] if len(numbers) < 3 else [{"to": numbers[2], "code": "invalid_number", "reason": "no"}]
    journal.after(
        0,
        Part(
            accepted=[{"to": n, "message_id": f"m{index}-{k}"} for k, n in enumerate(accepted)],
            rejected=rejected,
            segments=len(accepted),
        ),
    )
    journal.end()
    return [store.chunks[i] for i in sorted(store.chunks)]


def seed(sends: int) -> dict[str, int]:
    import sqlalchemy as sa
    from airflow.models.asset import AssetActive, AssetEvent, AssetModel
    from airflow.models.dagrun import DagRun
    from airflow.models.task_state_store import TaskStateStoreModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunType

    from airflow_provider_sms.assets import asset_name, asset_uri
    from airflow_provider_sms.state import webhook_receipts as receipts
    from airflow_provider_sms.state.opt_outs import OptOut, event_variables
    from tests.ui.seed import ensure_dag

    counts = {"sends": 0, "task_instances": 0, "messages": 0, "chunks": 0, "reports": 0, "replies": 0, "opt_outs": 0}
    now = time.time()
    with create_session() as session:
        receipts.ensure(session)  # its own transaction: before this one writes (SQLite has one writer)
        for d in range(10):
            ensure_dag(session, f"speed_dag_{d}")
        runs = []
        for r in range(100):
            from datetime import datetime, timezone

            run = DagRun(
                dag_id=f"speed_dag_{r % 10}",
                run_id=f"manual__{r}",
                run_type=DagRunType.MANUAL,
                logical_date=datetime.fromtimestamp(now - r * 60, timezone.utc),
                state="success",
            )
            session.add(run)
            runs.append(run)
        session.flush()
        rows, subjects, tis = [], [], []
        per_run = max(sends // 100, 1)
        for i in range(sends):
            run = runs[i % 100]
            numbers = [f"+614{(i * 3 + k) % 100_000_000:08d}" for k in range(1 + i % 3)]
            chunks = _chunks(i, numbers)
            for index, chunk in enumerate(chunks):
                rows.append(
                    {
                        "dag_run_id": run.id,
                        "dag_id": run.dag_id,
                        "run_id": run.run_id,
                        "task_id": f"send_{i // 100}",
                        "map_index": -1,
                        "key": f"sms_send_ledger/{index}",
                        "value": json.dumps(chunk),
                        "updated_at": datetime.fromtimestamp(now - i, timezone.utc),
                    }
                )
            tis.append(
                {
                    "id": uuid.uuid4(),
                    "dag_id": run.dag_id,
                    "run_id": run.run_id,
                    "task_id": f"send_{i // 100}",
                    "map_index": -1,
                    "state": "success",
                    "operator": "SendSmsOperator",
                    "pool": "default_pool",
                    "end_date": datetime.fromtimestamp(now - i, timezone.utc),
                }
            )
            accepted = numbers if len(numbers) < 3 else numbers[:2]
            counts["messages"] += len(numbers)
            if i % 2 == 0:
                subjects += [receipts.digest(CONN, f"m{i}-{k}") for k in range(len(accepted))]
        assert per_run >= 1
        for start in range(0, len(rows), 2000):
            session.execute(sa.insert(TaskStateStoreModel.__table__), rows[start : start + 2000])
        for start in range(0, len(tis), 2000):  # the send tasks themselves, as the runs left them
            session.execute(sa.insert(TaskInstance.__table__), tis[start : start + 2000])
        counts["sends"], counts["chunks"], counts["task_instances"] = sends, len(rows), len(tis)
        status_rows = [
            {
                "kind": "status",
                "key": receipts.digest(subject, "delivered"),
                "subject": subject,
                "conn_id": CONN,
                "status": "delivered",
                "flags": None,
                "asset_event_id": n + 1,
                "received_at": datetime.now(timezone.utc),
            }
            for n, subject in enumerate(subjects)
        ]
        for start in range(0, len(status_rows), 2000):
            session.execute(sa.insert(receipts.RECEIPTS), status_rows[start : start + 2000])
        counts["reports"] = len(status_rows)
        model = AssetModel(name=asset_name(CONN, "inbound"), uri=asset_uri(CONN, "inbound"))
        session.add(model)
        session.flush()
        session.add(AssetActive.for_asset(model))
        for n in range(2000):
            message = {
                "provider": "cloudware",
                "message_id": f"r{n}",
                "from_number": f"+6149{n:07d}",
                "to_number": "+61400000000",
                "text": "YES" if n % 2 else "STOP",
                "received_at": datetime.fromtimestamp(now - n, timezone.utc).isoformat(),
                "raw": {},
            }
            session.add(AssetEvent(asset_id=model.id, extra={"conn_id": CONN, "message": message}))
        counts["replies"] = 2000
        for n in range(1000):
            number = f"+6148{n:07d}"
            entry = OptOut(number, datetime.fromtimestamp(now - n, timezone.utc), f"reply:{CONN}", "STOP")
            for key, value in event_variables(entry).items():
                session.add(Variable(key=key, val=value))
        counts["opt_outs"] = 1000
    return counts


def measure(rounds: int) -> dict[str, list[float]]:
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    timings: dict[str, list[float]] = {}
    with TestClient(create_app(apps="core")) as client:
        jwt = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="viewer", role="viewer"))
        headers = {"Authorization": f"Bearer {jwt}"}
        for name, path in ROUTES.items():
            for _ in range(rounds):
                started = time.perf_counter()
                answer = client.get(path, headers=headers)
                elapsed = time.perf_counter() - started
                if answer.status_code != 200:
                    raise RuntimeError(f"{path}: {answer.status_code} {answer.text[:200]}")
                timings.setdefault(name, []).append(round(elapsed, 4))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", required=True)
    parser.add_argument("--db")
    parser.add_argument("--sends", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if not args.child:  # Airflow reads its configuration at import: start over with it in the environment
        env = {
            **os.environ,
            "AIRFLOW_HOME": args.home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
        if args.db:
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = args.db
        Path(args.home).mkdir(parents=True, exist_ok=True)
        airflow = str(Path(sys.executable).with_name("airflow"))
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
        argv = [sys.executable, "-m", "tests.ui.speed", *sys.argv[1:], "--child"]
        raise SystemExit(subprocess.run(argv, env=env, check=False).returncode)
    started = time.perf_counter()
    seeded = seed(args.sends)
    seeded_in = round(time.perf_counter() - started, 1)
    print(json.dumps({"seeded": seeded, "seeded_in_s": seeded_in, "routes": measure(args.rounds)}))


if __name__ == "__main__":
    main()
