"""Airflow's own ApprovalOperator with SmsNotifier as its notifier: the request goes out by SMS."""

from __future__ import annotations

from airflow_provider_sms.operators.hitl import HITL_AVAILABLE

if HITL_AVAILABLE:
    import pendulum
    from airflow.providers.standard.operators.hitl import ApprovalOperator
    from airflow.sdk import DAG

    from airflow_provider_sms.notifications.sms import SmsNotifier

    with DAG("hitl_sms_notifier", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
        ApprovalOperator(
            task_id="approve",
            subject="Ship release 1.2?",
            notifiers=[SmsNotifier(sms_conn_id="cloudware_default", to="+61400000031")],
        )
