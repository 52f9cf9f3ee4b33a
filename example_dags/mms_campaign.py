"""An MMS campaign through Cellcast: an image with a short text to a list of subscribers."""

from __future__ import annotations

from pathlib import Path

import pendulum

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow.models.dag import DAG

from airflow_provider_sms.operators.cellcast import CellcastSendMmsOperator

with DAG(
    dag_id="mms_campaign",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["sms", "example"],
) as dag:
    CellcastSendMmsOperator(
        task_id="send_campaign",
        to=["+61400000001", "0400000002", "0400000003"],
        message="This week only: two coffees for the price of one. Show this message at the counter.",
        media=str(Path(__file__).parent / "assets" / "promo.png"),
        fail_on_rejected=False,
    )
