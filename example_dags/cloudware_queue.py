"""Queue messages with Cloudware: recipients come from an upstream task through XCom."""

from __future__ import annotations

import pendulum

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow.decorators import task
    from airflow.models.dag import DAG

from airflow_provider_sms.operators.cloudware import CloudwareQueueSmsOperator

with DAG(
    dag_id="cloudware_queue",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["sms", "example"],
) as dag:

    @task
    def subscribers() -> list[str]:
        return ["2348012345678", "+2348012345679", "2348012345680"]

    CloudwareQueueSmsOperator(
        task_id="queue_newsletter",
        to=subscribers(),
        message="Our {{ dag_run.start_date | ds }} newsletter is out: reply STOP to unsubscribe.",
    )
