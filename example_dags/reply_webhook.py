"""Replies pushed by the provider start this DAG: no polling anywhere (Airflow 3).

Cloudware calls the SMS webhook on the Airflow API server for every reply
(``/sms/webhooks/cloudware_default/inbound?secret=...``; see the README's "Webhooks"); the webhook
records it as an event on ``inbound_sms_asset("cloudware_default")``, and the scheduler starts a run of
this DAG. A run may carry several replies when they arrive close together; each event's
``extra["message"]`` is the ``InboundMessage`` dict. Here every reply gets a short acknowledgement.
On Airflow 2.11 (no webhook receiver) this file defines no DAG.
"""

from __future__ import annotations

from airflow_provider_sms._compat import AIRFLOW_V_3

if AIRFLOW_V_3:
    import pendulum
    from airflow.sdk import DAG, task

    from airflow_provider_sms.assets import inbound_sms_asset

    replies = inbound_sms_asset("cloudware_default")

    with DAG(
        dag_id="reply_webhook",
        schedule=[replies],
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        catchup=False,
        tags=["sms", "example"],
    ) as dag:

        @task
        def acknowledge(triggering_asset_events: dict | None = None) -> list[str]:
            from airflow_provider_sms.hooks import get_sms_hook

            senders = []
            for event in (triggering_asset_events or {}).get(replies, []):
                message = event.extra["message"]
                senders.append(message["from_number"])
            if senders:
                result = get_sms_hook("cloudware_default").send_sms(
                    to=sorted(set(senders)), message="Thanks, we got your reply."
                )
                print(result.summary())
            return senders

        acknowledge()
