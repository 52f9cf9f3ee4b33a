"""On-call escalation: page the primary, wait for ACK, otherwise the secondary, then the manager.

One ``SendSmsOperator`` does it: it texts the primary on-call and waits deferred (no worker slot) for a
reply matching "ACK" from anyone paged so far. A text that Cloudware does not confirm within
``deliver_within`` goes through Cellcast instead (``fallback_conn_ids``); nobody acknowledging within
``ack_within`` (the ``ack_within_seconds`` param: ten minutes, seconds in the demo) pages the next
level of ``escalation``. An ACK ends it; a person whose text was delivered is never texted again, and
each page goes out once (the send ledger), even when the task is retried. Nobody acknowledging fails
the task, so the run's failure callbacks and alerts take over. ``who_acknowledged`` names the level.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow.decorators import task
    from airflow.models.dag import DAG

from airflow_provider_sms.operators.send import SendSmsOperator

ON_CALL = {"primary": "+61400000021", "secondary": "+61400000022", "manager": "+61400000023"}

with DAG(
    dag_id="oncall_escalation",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"incident": "Nightly load failed", "ack_within_seconds": 600},
    tags=["sms", "example"],
) as dag:
    page = SendSmsOperator(
        task_id="page_on_call",
        sms_conn_id="cloudware_default",  # its inbox carries the ACK replies
        fallback_conn_ids=["cellcast_default"],  # a text Cloudware does not confirm in time goes this way
        to=ON_CALL["primary"],
        escalation=[ON_CALL["secondary"], ON_CALL["manager"]],
        message="INCIDENT: {{ params.incident }}. Reply ACK to take it.",
        deliver_within=timedelta(minutes=2),
        ack_within="{{ params.ack_within_seconds }}",
        delivery_poll_interval=5,
    )

    @task
    def who_acknowledged(result: dict[str, Any]) -> str:
        by = result["fallback"]["acked_by"]
        level = next(name for name, phone in ON_CALL.items() if phone == by)
        print(f"{level} acknowledged ({len(result['fallback']['texts'])} page(s) sent)")
        return level

    who_acknowledged(page.output)
