"""Real-stack tests: a real Postgres and real Airflow components, run once, on the newest Airflow."""

from __future__ import annotations

import pytest


def require_newest_airflow() -> None:
    """Skip the calling module unless Airflow 3.3 or newer is installed (CI runs these on the newest only)."""
    airflow = pytest.importorskip("airflow")
    if tuple(int(p) for p in airflow.__version__.split(".")[:2]) < (3, 3):
        pytest.skip("real-stack tests run on the newest Airflow (3.3) only", allow_module_level=True)
