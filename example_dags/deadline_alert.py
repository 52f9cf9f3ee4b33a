"""A Deadline Alert by SMS (Airflow 3.1+): when a run is not done in time, the on-call phone is texted.

The deadline is ``report_deadline_seconds`` (an Airflow Variable) after the run is queued. If the run
is still going then, the scheduler hands ``SmsNotifier`` to the triggerer as an ``AsyncCallback``; the
notifier sends "Airflow DEADLINE MISSED: deadline_alert run ..., due ..." without blocking the
triggerer's event loop. Trigger with ``{"work_seconds": 60}`` to see it. On older Airflow this file
defines no DAG.
"""

from __future__ import annotations

from datetime import timedelta

try:
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference
except ImportError:  # Airflow before 3.1: no Deadline Alerts
    DeadlineAlert = None

if DeadlineAlert is not None:
    import pendulum
    from airflow.sdk import DAG, task

    from airflow_provider_sms.notifications.sms import SmsNotifier

    try:
        from airflow.sdk.definitions.deadline import VariableInterval

        ready_within: object = VariableInterval("report_deadline_seconds")
    except ImportError:  # Airflow 3.1 and 3.2: a fixed interval
        ready_within = timedelta(hours=2)

    with DAG(
        dag_id="deadline_alert",
        schedule=None,
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        catchup=False,
        params={"work_seconds": 5},
        deadline=DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=ready_within,  # type: ignore[arg-type]
            callback=AsyncCallback(SmsNotifier, kwargs={"sms_conn_id": "cellcast_default", "to": ["+61400000001"]}),
        ),
        tags=["sms", "example"],
    ) as dag:

        @task
        def build_report(params: dict | None = None) -> str:
            import time

            time.sleep(float((params or {}).get("work_seconds", 5)))
            return "report built"

        build_report()
