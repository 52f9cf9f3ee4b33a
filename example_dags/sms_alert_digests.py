"""Alert digests: text each phone its held ``SmsNotifier`` alerts when their group window closes.

Add this DAG once per deployment (and unpause it) when you use ``SmsNotifier``'s grouping
(``example_dags/sms_alerting.py``). On Airflow 3 an ``AssetWatcher`` keeps ``SmsAlertDigestTrigger``
running in the triggerer: it looks at the held alerts every 30 seconds (sooner when one falls due),
texts each due digest once, and each round that texted someone becomes an asset event and a run of
this DAG, which logs what went out (numbers masked). On Airflow 2.11, which has no ``AssetWatcher``,
the DAG runs every minute and its task sends the due digests itself.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum

from airflow_provider_sms._compat import AIRFLOW_V_3

if AIRFLOW_V_3:
    from airflow.sdk import DAG, Asset, AssetWatcher, task

    from airflow_provider_sms.triggers.digest import SmsAlertDigestTrigger

    digests = Asset(
        "sms_alert_digests",
        watchers=[AssetWatcher(name="sms_alert_digests", trigger=SmsAlertDigestTrigger(poll_interval=30))],
    )

    with DAG(
        dag_id="sms_alert_digests",
        schedule=[digests],
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        catchup=False,
        tags=["sms", "example"],
    ) as dag:

        @task
        def record(triggering_asset_events: dict | None = None) -> list[dict]:
            sent = [
                d
                for event in (triggering_asset_events or {}).get(digests, [])
                for d in event.extra["payload"]["digests"]
            ]
            for digest in sent:
                print(f"digest of {digest['alerts']} alert(s) on {digest['keys']} key(s) to {digest['to']}")
            return sent

        record()

else:  # Airflow 2.11
    from airflow.decorators import task
    from airflow.models.dag import DAG

    with DAG(
        dag_id="sms_alert_digests",
        schedule=timedelta(minutes=1),
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=["sms", "example"],
    ) as dag:

        @task
        def send_digests() -> list[dict]:
            from airflow_provider_sms.notifications.sms import send_due_digests

            return send_due_digests()

        send_digests()
