"""Scheduled reminders: each customer gets a personal text at 09:00 in their own time zone, via Clickatell.

An upstream task (a SQL query in real life) lists customers; each row becomes a personal message, and
``local_time="09:00"`` does the rest: each number's zone comes from the number itself (Los Angeles for
+1 415, Lagos for +234), Australian mobiles, which span several zones, use ``default_tz``, and a row
may name its own ``tz``. Recipients due at the same moment with the same text share one Clickatell
request, which holds each message until its ``scheduledDeliveryTime``. The task's XCom says, per
recipient, when the message will arrive and in which zone.
"""

from __future__ import annotations

import pendulum

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow.decorators import task
    from airflow.models.dag import DAG

from airflow_provider_sms.operators.send import SendSmsOperator

with DAG(
    dag_id="scheduled_reminders",
    schedule="0 12 * * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["sms", "example"],
) as dag:

    @task
    def customers_with_appointments() -> list[dict[str, str]]:
        return [
            {"name": "Ann", "phone": "+61400000001", "appointment": "10:30"},
            {"name": "Bo", "phone": "+14155550123", "appointment": "14:00"},
            {"name": "Chidi", "phone": "+2348012345678", "appointment": "10:30"},
        ]

    @task
    def reminder_texts(customers: list[dict[str, str]]) -> list[dict[str, str]]:
        return [
            {
                "to": c["phone"],
                "message": f"Hi {c['name']}, a reminder of your appointment today at {c['appointment']}.",
            }
            for c in customers
        ]

    SendSmsOperator(
        task_id="schedule_reminders",
        sms_conn_id="clickatell_default",
        messages=reminder_texts(customers_with_appointments()),
        local_time="09:00",
        default_tz="Australia/Sydney",
    )
