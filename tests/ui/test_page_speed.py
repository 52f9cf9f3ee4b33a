"""The SMS page's JSON routes answer within a second with 10,000 sends in the ledgers (20,000 messages,
20,000 ledger chunks, 8,333 delivery reports, 2,000 replies, 1,000 opt-outs), on SQLite and on
Postgres, measured through Airflow's own API app with a viewer's token (``tests/ui/speed.py``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from statistics import median

import pytest

from tests.realstack import require_newest_airflow
from tests.realstack.postgres import fresh_postgres_url, postgres_server  # noqa: F401 - fixtures

require_newest_airflow()

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]
BUDGET = 1.0  # seconds a route may take (the median of three calls; the first call warms the process up)


def measured(home: Path, db: str | None = None) -> dict:
    argv = [sys.executable, "-m", "tests.ui.speed", "--home", str(home), "--sends", "10000"]
    done = subprocess.run(
        [*argv, *(["--db", db] if db else [])], cwd=ROOT, capture_output=True, text=True, timeout=800, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def check(result: dict) -> None:
    assert result["seeded"]["sends"] == 10_000 and result["seeded"]["chunks"] == 20_000
    slow = {name: times for name, times in result["routes"].items() if median(times) > BUDGET}
    assert not slow, f"over {BUDGET}s: {slow}"
    print(json.dumps(result))  # the numbers, for the README (pytest -s)


def test_routes_answer_within_a_second_with_10000_sends_on_sqlite(tmp_path: Path) -> None:
    check(measured(tmp_path / "airflow"))


def test_routes_answer_within_a_second_with_10000_sends_on_postgres(
    tmp_path: Path,
    fresh_postgres_url: str,  # noqa: F811
) -> None:
    check(measured(tmp_path / "airflow", fresh_postgres_url))
