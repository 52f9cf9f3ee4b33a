"""A DAG for the real-stack digest test: three mapped loads fail under one key with a 20-second window."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_sms.notifications.sms import SmsNotifier

alert = SmsNotifier(sms_conn_id="cellcast_default", to=["+61400000001"], group_window=timedelta(seconds=20))

with DAG(
    dag_id="alert_window",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    default_args={"on_failure_callback": alert},
) as dag:

    @task
    def load(table: str) -> None:
        raise RuntimeError(f"{table} table is locked")

    load.expand(table=["orders", "customers", "payments"])
