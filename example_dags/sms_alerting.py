"""Pipeline alerting: text the on-call phone when the nightly load fails, without a storm, and when it recovers.

``SmsNotifier`` is every load's ``on_failure_callback`` and ``on_success_callback``. Its alerts are
grouped by key (here the DAG and task: the three mapped loads share one): the first failure texts at
once ("Airflow FAILED: sms_alerting.nightly_load try 1 ...: orders table is locked"), the others are
held for ``group_window`` and go out as one digest ("sms_alerting.nightly_load: 2 more failures since
02:14 UTC, last: ..."), sent by the ``sms_alert_digests`` DAG's trigger when the window closes; no
phone gets more than ``max_per_hour`` texts. The next successful load texts "RESOLVED ..." to whoever
was alerted, once. Trigger with ``{"simulate_failure": true}`` to see the alert.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum

try:
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2.11
    from airflow.decorators import task
    from airflow.models.dag import DAG
    from airflow.models.param import Param

from airflow_provider_sms.notifications.sms import SmsNotifier

ON_CALL = ["+61400000001"]
TABLES = ["orders", "customers", "payments"]

alert = SmsNotifier(
    sms_conn_id="cellcast_default",
    to=ON_CALL,
    group_window=timedelta(minutes=10),  # later failures of a key wait for one digest
    max_per_hour=10,  # per phone, across every alert
    # key="{{ dag.dag_id }}",  # one group for the whole DAG instead of one per task
    # severity="critical",  # text every failure at once, even in quiet_hours
)

with DAG(
    dag_id="sms_alerting",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"simulate_failure": Param(False, type="boolean")},
    default_args={"on_failure_callback": alert, "on_success_callback": alert},
    tags=["sms", "example"],
) as dag:

    @task
    def nightly_load(table: str, params: dict | None = None) -> int:
        if params and params.get("simulate_failure"):
            raise RuntimeError(f"cannot load {table}: orders table is locked")  # one upstream, many failures
        return 42

    nightly_load.expand(table=TABLES)
