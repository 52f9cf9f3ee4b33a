"""Send reminders, wait until the provider says what became of each one, and report who did not get it.

``SmsDeliverySensor`` follows the send's result (its XCom) and asks Cellcast about every message still
pending, one report call per message, paced under Cellcast's 15 calls a second. Deferred, the waiting
happens in the triggerer. ``fail_on_undelivered=False`` hands the outcome downstream instead of failing,
so the last task can list the numbers that need another channel. In the sandbox, +61400000911 always
fails: it shows the path a wrong or dead number takes.
"""

from __future__ import annotations

import pendulum

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow.decorators import task
    from airflow.models.dag import DAG

from airflow_provider_sms.operators.send import SendSmsOperator
from airflow_provider_sms.sensors.delivery import SmsDeliverySensor

CUSTOMERS = ["+61400000041", "+61400000042", "+61400000911"]

with DAG(
    dag_id="delivery_report",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["sms", "example"],
) as dag:
    send = SendSmsOperator(
        task_id="send_reminders",
        sms_conn_id="cellcast_default",
        to=CUSTOMERS,
        message="Reminder: your appointment is tomorrow at 10:00. Reply C to cancel.",
    )

    delivery = SmsDeliverySensor(
        task_id="wait_for_delivery",
        sms_conn_id="cellcast_default",
        result=send.output,
        fail_on_undelivered=False,
        deferrable=True,
        poke_interval=5,
        timeout=15 * 60,
    )

    @task
    def not_reached(outcome: dict) -> list[str]:
        """The numbers to try another way: undelivered, or still unconfirmed when the wait ended."""
        missing = outcome["undelivered"] + outcome["pending"]
        print(f"{len(outcome['delivered'])} delivered; {len(missing)} not reached")
        return missing

    not_reached(delivery.output)
