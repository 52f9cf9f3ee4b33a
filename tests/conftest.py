"""Shared fixtures: an isolated AIRFLOW_HOME, Airflow connections from env vars, a scripted loopback server."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-sms-tests-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

import pytest

from tests.scripted_server import ScriptedServer

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


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
