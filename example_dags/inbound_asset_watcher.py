"""Event-driven DAG (Airflow 3): every inbound SMS that says STOP triggers one run, which opts the sender out.

``InboundSmsEventTrigger`` watches Cloudware's inbound listing from an ``AssetWatcher``; each matching
message becomes an asset event whose ``extra["payload"]["message"]`` is the ``InboundMessage`` dict.
On Airflow 2.11 (no ``AssetWatcher``) this file defines no DAG.
"""

from __future__ import annotations

from airflow_provider_sms._compat import AIRFLOW_V_3

if AIRFLOW_V_3:
    import pendulum
    from airflow.sdk import DAG, Asset, AssetWatcher, task

    from airflow_provider_sms.triggers.inbound import InboundSmsEventTrigger

    stop_requests = Asset(
        "sms_stop_requests",
        watchers=[
            AssetWatcher(
                name="cloudware_stop_requests",
                trigger=InboundSmsEventTrigger(sms_conn_id="cloudware_default", match=["STOP"], poll_interval=30),
            )
        ],
    )

    with DAG(
        dag_id="inbound_asset_watcher",
        schedule=[stop_requests],
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        catchup=False,
        tags=["sms", "example"],
    ) as dag:

        @task
        def opt_out(triggering_asset_events: dict | None = None) -> list[str]:
            numbers = []
            for event in (triggering_asset_events or {}).get(stop_requests, []):
                message = event.extra["payload"]["message"]
                numbers.append(message["from_number"])
            print(f"opting out {len(numbers)} number(s)")
            return numbers

        opt_out()
