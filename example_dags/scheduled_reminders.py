"""Scheduled reminders: each customer gets a personal text at 09:00 in their own time zone, via Clickatell.

An upstream task (a SQL query in real life) lists customers; ``plan_reminders`` finds each number's
time zone with ``phonenumbers`` and the next 09:00 there with pendulum, then groups identical
(text, time) pairs so each group is one Clickatell batch. ``ClickatellSendMessageOperator`` is mapped
over the groups; Clickatell holds each message until its ``scheduledDeliveryTime``.
"""

from __future__ import annotations

import pendulum

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow.decorators import task
    from airflow.models.dag import DAG

from airflow_provider_sms.operators.clickatell import ClickatellSendMessageOperator

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
    def plan_reminders(customers: list[dict[str, str]]) -> list[dict[str, object]]:
        import phonenumbers
        from phonenumbers import timezone as phone_timezones

        groups: dict[tuple[str, str], list[str]] = {}
        for customer in customers:
            zones = phone_timezones.time_zones_for_number(phonenumbers.parse(customer["phone"]))
            zone = zones[0] if zones and zones[0] != "Etc/Unknown" else "UTC"
            local_now = pendulum.now(zone)
            nine = local_now.start_of("day").add(hours=9)
            send_at = nine if nine > local_now else nine.add(days=1)
            text = f"Hi {customer['name']}, a reminder of your appointment today at {customer['appointment']}."
            groups.setdefault((text, send_at.isoformat()), []).append(customer["phone"])
        return [{"to": to, "message": text, "send_at": when} for (text, when), to in groups.items()]

    ClickatellSendMessageOperator.partial(task_id="schedule_reminder").expand_kwargs(
        plan_reminders(customers_with_appointments())
    )
