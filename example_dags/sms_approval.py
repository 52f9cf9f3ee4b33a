"""Approval by text message (Airflow 3.1+): the approver answers from their phone, or in Airflow's UI.

``SmsApprovalOperator`` is Airflow's ``ApprovalOperator`` that also texts the question: "Publish the
report? Reply APPROVE or REJECT" (YES and NO work too). Whichever answer comes first, by SMS or in the
UI, is recorded as the task's human-in-the-loop response; approve runs ``publish``, reject skips it.
Without an answer within the hour, the default (Reject) applies. On older Airflow this file defines no DAG.
"""

from __future__ import annotations

from datetime import timedelta

from airflow_provider_sms.operators.hitl import HITL_AVAILABLE

if HITL_AVAILABLE:
    import pendulum
    from airflow.sdk import DAG, task

    from airflow_provider_sms.operators.hitl import SmsApprovalOperator

    with DAG(
        dag_id="sms_approval",
        schedule=None,
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        catchup=False,
        tags=["sms", "example"],
    ) as dag:

        @task
        def build_report() -> int:
            return 1234  # rows in today's report

        approval = SmsApprovalOperator(
            task_id="approve_publishing",
            subject="Publish the {{ dag_run.start_date | ds }} sales report?",
            body="Today's report has {{ ti.xcom_pull('build_report') }} rows.",
            sms_conn_id="cloudware_default",
            to="+61400000002",
            defaults="Reject",
            response_timeout=timedelta(hours=1),
        )

        @task
        def publish() -> str:
            return "published"

        build_report() >> approval >> publish()
