"""The one module that imports Airflow base classes, from ``airflow.sdk`` (3.x) or Airflow 2.11 paths.

Everything else in the package imports them from here, so supporting both lines is a matter of this
file alone. ``AIRFLOW_V_3`` tells the few features that exist only on Airflow 3 (event triggers for
``AssetWatcher``) whether they can run.
"""

from __future__ import annotations

try:
    from airflow.sdk import (
        BaseHook,
        BaseNotifier,
        BaseOperator,
        BaseSensorOperator,
        Context,
        PokeReturnValue,
    )
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    AIRFLOW_V_3 = True
except ImportError:  # Airflow 2.11
    from airflow.exceptions import AirflowFailException, AirflowSkipException  # type: ignore[no-redef]
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef,attr-defined]
    from airflow.models.baseoperator import BaseOperator  # type: ignore[no-redef]
    from airflow.notifications.basenotifier import BaseNotifier  # type: ignore[no-redef]
    from airflow.sensors.base import BaseSensorOperator, PokeReturnValue  # type: ignore[no-redef]
    from airflow.utils.context import Context  # type: ignore[no-redef,attr-defined]

    AIRFLOW_V_3 = False

__all__ = [
    "AIRFLOW_V_3",
    "AirflowFailException",
    "AirflowSkipException",
    "BaseHook",
    "BaseNotifier",
    "BaseOperator",
    "BaseSensorOperator",
    "Context",
    "PokeReturnValue",
]
