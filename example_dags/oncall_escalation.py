"""On-call escalation: text the primary, wait for ACK, otherwise the secondary, then the manager.

Built from the provider's operator and sensor only. Each level is a text (``SendSmsOperator``) and a
deferred wait for "ACK" from that phone (``InboundSmsSensor`` with ``soft_fail``: no answer in time
skips the level). The next level runs only when every level before it was skipped. ``who_acknowledged``
records the first acknowledgement; ``nobody_acknowledged`` runs when every level timed out.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow.decorators import task
    from airflow.models.dag import DAG

from airflow_provider_sms.operators.send import SendSmsOperator
from airflow_provider_sms.sensors.inbound import InboundSmsSensor

ON_CALL = {"primary": "+61400000021", "secondary": "+61400000022", "manager": "+61400000023"}
ACK_WAIT = timedelta(minutes=10)

with DAG(
    dag_id="oncall_escalation",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"incident": "Nightly load failed"},
    tags=["sms", "example"],
) as dag:
    acks: list[InboundSmsSensor] = []
    for level, phone in ON_CALL.items():
        page = SendSmsOperator(
            task_id=f"page_{level}",
            sms_conn_id="cloudware_default",
            to=phone,
            message="INCIDENT: {{ params.incident }}. Reply ACK to take it.",
            trigger_rule="all_skipped" if acks else "all_success",  # only when nobody before answered
        )
        ack = InboundSmsSensor(
            task_id=f"ack_{level}",
            sms_conn_id="cloudware_default",
            from_numbers=phone,
            match=["ACK"],
            deferrable=True,
            poke_interval=5,
            timeout=ACK_WAIT.total_seconds(),
            soft_fail=True,  # no answer in time: skip this level, escalate to the next
        )
        if acks:
            acks >> page  # every earlier level must have been skipped
        page >> ack
        acks.append(ack)

    @task(trigger_rule="one_success")
    def who_acknowledged(**context: object) -> str:
        ti = context["ti"]
        for level in ON_CALL:
            reply = ti.xcom_pull(task_ids=f"ack_{level}")  # type: ignore[attr-defined]
            if reply:
                print(f"{level} ({reply['from_number']}) acknowledged at {reply['received_at']}")
                return level
        raise RuntimeError("no acknowledgement found")

    @task(trigger_rule="all_skipped")
    def nobody_acknowledged() -> None:
        raise RuntimeError("nobody acknowledged the incident")

    acks >> who_acknowledged()
    acks >> nobody_acknowledged()
