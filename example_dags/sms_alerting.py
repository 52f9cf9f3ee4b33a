"""Pipeline alerting: text the on-call phone when the nightly load fails.

``SmsNotifier`` is the task's ``on_failure_callback``; its default message names the DAG, task, run, try
and exception and fits one SMS. Trigger with ``{"simulate_failure": true}`` to see the alert.
"""

from __future__ import annotations

import pendulum

try:
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2.11
    from airflow.decorators import task
    from airflow.models.dag import DAG
    from airflow.models.param import Param

from airflow_provider_sms.notifications.sms import SmsNotifier

ON_CALL = ["+61400000001"]

with DAG(
    dag_id="sms_alerting",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"simulate_failure": Param(False, type="boolean")},
    tags=["sms", "example"],
) as dag:

    @task(on_failure_callback=SmsNotifier(sms_conn_id="cellcast_default", to=ON_CALL))
    def nightly_load(params: dict | None = None) -> int:
        if params and params.get("simulate_failure"):
            raise RuntimeError("orders table is locked")
        return 42

    nightly_load()
