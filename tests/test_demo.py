"""The demo's REST calls survive a busy API server: 5xx answers are retried with backoff, a retried
trigger never starts a second run, and what keeps failing is reported as a step, not a traceback."""

from __future__ import annotations

import types
from typing import Any

import pytest
import requests

from demo import run_demo

API = "http://127.0.0.1:1"


@pytest.fixture
def airflow(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(run_demo, "RETRY_DELAYS", (0, 0, 0))
    return types.SimpleNamespace(url=API, http=requests.Session())


def test_a_trigger_answered_500_is_retried_under_the_same_run_id(airflow: Any, requests_mock: Any) -> None:
    requests_mock.get(f"{API}/api/v2/dags/d", json={"next_dagrun_logical_date": None})
    posted = requests_mock.post(
        f"{API}/api/v2/dags/d/dagRuns", [{"status_code": 500}, {"status_code": 200, "json": {"dag_run_id": "x"}}]
    )
    unpaused = requests_mock.patch(f"{API}/api/v2/dags/d", json={"is_paused": False})
    run_id = run_demo.trigger(airflow, "d", {"a": 1})
    first, second = (call.json() for call in posted.request_history)
    assert first == second  # the same run id and logical date: a repeat cannot start a second run
    assert first["dag_run_id"] == run_id and first["conf"] == {"a": 1}
    assert unpaused.call_count == 1


def test_a_409_after_a_500_means_the_first_try_went_through(airflow: Any, requests_mock: Any) -> None:
    requests_mock.get(f"{API}/api/v2/dags/d", json={"next_dagrun_logical_date": "2030-01-01T00:00:00+00:00"})
    posted = requests_mock.post(f"{API}/api/v2/dags/d/dagRuns", [{"status_code": 500}, {"status_code": 409}])
    requests_mock.patch(f"{API}/api/v2/dags/d", json={})
    run_demo.trigger(airflow, "d", None)
    assert posted.call_count == 2
    assert posted.request_history[0].json()["logical_date"] == "2030-01-01T00:00:00+00:00"


def test_a_4xx_is_not_retried_and_a_lasting_5xx_names_the_step(airflow: Any, requests_mock: Any) -> None:
    requests_mock.get(f"{API}/api/v2/dags/d", json={})
    posted = requests_mock.post(f"{API}/api/v2/dags/d/dagRuns", status_code=409)
    with pytest.raises(run_demo.DemoError, match=r"triggering d: HTTP 409 from POST"):
        run_demo.trigger(airflow, "d", None)
    assert posted.call_count == 1  # a first-try 409 is a real conflict
    requests_mock.post(f"{API}/api/v2/dags/e/dagRuns", status_code=503)
    requests_mock.get(f"{API}/api/v2/dags/e", json={})
    with pytest.raises(run_demo.DemoError, match=r"triggering e: HTTP 503"):
        run_demo.trigger(airflow, "e", None)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("demo", "demo/run_demo.py --port 9000 --airflow-port 9001"),
        ("demo-serve", "demo/run_demo.py --serve --port 9000 --airflow-port 9001"),
        ("sandbox", "airflow-sms-sandbox --host 127.0.0.1 --port 9000"),
    ],
)
def test_every_port_is_settable_from_make(target: str, expected: str) -> None:
    import shutil
    import subprocess
    from pathlib import Path

    make = shutil.which("make")
    if make is None:
        pytest.skip("needs make")
    root = Path(__file__).resolve().parent.parent
    planned = subprocess.run(
        [make, "-n", "-C", str(root), target, "SANDBOX_PORT=9000", "AIRFLOW_PORT=9001"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert expected in planned
