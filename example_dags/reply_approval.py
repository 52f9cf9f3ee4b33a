"""Reply-triggered work: text an approver, wait (deferred) for YES or NO from that number, branch on it.

The sensor only counts replies received after the run started, from the approver's number in any
form, matching YES or NO as whole words; it waits in the triggerer, not a worker slot.
"""

from __future__ import annotations

import pendulum

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow.decorators import task
    from airflow.models.dag import DAG

from airflow_provider_sms.operators.send import SendSmsOperator
from airflow_provider_sms.sensors.inbound import InboundSmsSensor

with DAG(
    dag_id="reply_approval",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"approver": "+61400000001"},
    tags=["sms", "example"],
) as dag:
    ask = SendSmsOperator(
        task_id="ask_for_approval",
        sms_conn_id="cloudware_default",
        to="{{ params.approver }}",
        message="The {{ dag_run.start_date | ds }} report is ready. Reply YES to publish it or NO to hold it.",
    )

    reply = InboundSmsSensor(
        task_id="wait_for_reply",
        sms_conn_id="cloudware_default",
        from_numbers="{{ params.approver }}",
        match=["YES", "NO"],
        deferrable=True,
        poke_interval=5,
        timeout=60 * 60,
    )

    @task.branch
    def decide(message: dict) -> str:
        import re

        return "publish" if re.search(r"\byes\b", message["text"], re.IGNORECASE) else "hold"

    @task
    def publish() -> str:
        return "published"

    @task
    def hold() -> str:
        return "held"

    ask >> reply
    decide(reply.output) >> [publish(), hold()]
