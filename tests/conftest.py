"""Shared fixtures: an isolated AIRFLOW_HOME, Airflow connections from env vars, a scripted loopback server."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scripted_server import ScriptedServer

# Airflow reads its configuration on first import: set it up before any test module imports Airflow.
EXAMPLE_DAGS = Path(__file__).resolve().parent.parent / "example_dags"

os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="airflow-sms-tests-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(EXAMPLE_DAGS)

TOKEN = "s3cr3t-token-value-XYZ"


@pytest.fixture
def make_conn(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Create an Airflow connection through ``AIRFLOW_CONN_<ID>`` and return its id."""

    def make(
        conn_id: str, conn_type: str, *, host: str | None = None, password: str | None = TOKEN, **extra: object
    ) -> str:
        conn: dict[str, object] = {"conn_type": conn_type}
        if host is not None:
            conn["host"] = host
        if password is not None:
            conn["password"] = password
        if extra:
            conn["extra"] = extra
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn_id

    return make


_database_ready: list[bool] = []


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A migrated SQLite metadata database in the session's AIRFLOW_HOME, for real DAG runs."""
    import subprocess
    import sys

    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True)
    _database_ready.append(True)


@pytest.fixture(autouse=True)
def _empty_opt_out_register() -> Iterator[None]:
    """Once the session's metadata database exists, every send consults the opt-out register in it: empty
    it after each test, so that a number one test opted out is not skipped by the next (whatever order
    the tests run in)."""
    yield
    if _database_ready:
        from tests.keystore import empty_opt_out_register

        empty_opt_out_register()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[object]:
    """One sandbox for the session, on a free loopback port; tests reset it before use."""
    from airflow_provider_sms.sandbox.server import SandboxServer

    with SandboxServer() as srv:
        yield srv


@pytest.fixture
def sandbox(sandbox_server: object) -> object:
    sandbox_server.reset()  # type: ignore[attr-defined]
    return sandbox_server


def reply_when_texted(store: Any, phone: str, text: str, provider: str = "cloudware") -> list[dict[str, Any]]:
    """Make ``phone`` answer ``text`` (once) the moment the sandbox stores a message to it.

    The reply is stored in the same thread, right after the message it answers: no polling thread and
    no fixed wait, so a sensor that looks any time after the question was sent finds the answer.
    Returns the list the reply is appended to, for the test to assert it happened.
    """
    replies: list[dict[str, Any]] = []

    def answer(rows: list[dict[str, Any]]) -> None:
        if not replies and any(r["direction"] == "out" and r["phone"] == phone for r in rows):
            replies.append({})  # claimed before storing: the reply's own batch calls back here too
            replies[0] = store.add_message(direction="in", provider=provider, phone=phone, text=text, status="received")

    store.on_stored(answer)
    return replies
