"""Reminders that respect the night, through Cloudware, which cannot schedule a message.

``quiet_hours=("21:00", "08:00")``: whoever it is night for (in their own time zone) is held until 08:00
there; everyone else gets the text now. Cloudware has no scheduled delivery, so the task sends the
first group, then **defers** with Airflow's ``DateTimeTrigger`` until the next group is due, freeing its
worker slot while it waits. The groups still to send travel with the deferral, so a task resuming on
another worker sends only those. ``dry_run=True`` would show the plan (groups, zones, times) instead.
"""

from __future__ import annotations

import pendulum

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow.models.dag import DAG

from airflow_provider_sms.operators.send import SendSmsOperator

with DAG(
    dag_id="quiet_hours_reminders",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["sms", "example"],
) as dag:
    SendSmsOperator(
        task_id="remind",
        sms_conn_id="cloudware_default",
        messages=[
            {"to": "+61400000061", "message": "Your parcel arrives tomorrow.", "tz": "Australia/Sydney"},
            {"to": "+14155550124", "message": "Your parcel arrives tomorrow."},
            {"to": "+2348012345679", "message": "Your parcel arrives tomorrow."},
        ],
        quiet_hours=("21:00", "08:00"),
    )
