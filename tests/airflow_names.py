"""Airflow names the tests use, from Airflow 3 or 2.11 (the package itself only uses its _compat)."""

from __future__ import annotations

try:
    from airflow.sdk import DAG
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 2.11
    from airflow.exceptions import TaskDeferred  # type: ignore[no-redef]
    from airflow.models.dag import DAG  # type: ignore[no-redef]

try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow 2.11
    from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

__all__ = ["DAG", "DagBag", "TaskDeferred"]
