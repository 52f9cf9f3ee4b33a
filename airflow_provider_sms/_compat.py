"""The one module that imports Airflow base classes, from ``airflow.sdk`` (3.x) or Airflow 2.11 paths.

Everything else in the package imports them from here, so supporting both lines is a matter of this
file alone. ``AIRFLOW_V_3`` tells the few features that exist only on Airflow 3 (event triggers for
``AssetWatcher``) whether they can run; ``BaseEventTrigger`` is None on Airflow 2.11. The trigger base
classes are imported on first use, since DAG files that only use operators should not pay for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

try:
    from airflow.sdk import (
        BaseHook,
        BaseNotifier,
        BaseOperator,
        BaseSensorOperator,
        Context,
        PokeReturnValue,
    )
    from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout, AirflowSkipException

    AIRFLOW_V_3 = True
except ImportError:  # Airflow 2.11
    from airflow.exceptions import (  # type: ignore[no-redef]
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
    )
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef,attr-defined]
    from airflow.models.baseoperator import BaseOperator  # type: ignore[no-redef]
    from airflow.notifications.basenotifier import BaseNotifier  # type: ignore[no-redef]
    from airflow.sensors.base import BaseSensorOperator, PokeReturnValue  # type: ignore[no-redef]
    from airflow.utils.context import Context  # type: ignore[no-redef,attr-defined]

    AIRFLOW_V_3 = False

if TYPE_CHECKING:
    from airflow.triggers.base import BaseTrigger, TriggerEvent

    try:
        from airflow.triggers.base import BaseEventTrigger  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        BaseEventTrigger = None  # type: ignore[assignment,misc]

_TRIGGER_NAMES = ("BaseTrigger", "TriggerEvent", "BaseEventTrigger")


def __getattr__(name: str) -> Any:
    """Trigger base classes load on first use: they live in airflow-core, which DAG files need not import."""
    if name not in _TRIGGER_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from airflow.triggers import base

    for each in _TRIGGER_NAMES:  # BaseEventTrigger is None on Airflow 2.11 (no event-driven scheduling)
        globals()[each] = getattr(base, each, None)
    return globals()[name]


__all__ = [
    "AIRFLOW_V_3",
    "AirflowFailException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "BaseEventTrigger",
    "BaseHook",
    "BaseNotifier",
    "BaseOperator",
    "BaseSensorOperator",
    "BaseTrigger",
    "Context",
    "PokeReturnValue",
    "TriggerEvent",
]
