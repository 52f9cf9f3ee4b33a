"""Event-driven DAG through Airflow's common.messaging: a customer's reply starts a run (Airflow 3).

``MessageQueueTrigger(scheme="sms")`` is the standard trigger of
``apache-airflow-providers-common-messaging``; the ``sms`` scheme (``airflow-provider-sms[messaging]``)
resolves it to ``InboundSmsEventTrigger``: one shared poll per inbox, each reply fired once, and the
reply in the asset event's ``extra["payload"]["message"]``. Here every reply from two customers is
acknowledged. On Airflow 2.11, or without the common.messaging provider, this file defines no DAG.
"""

from __future__ import annotations

from importlib.util import find_spec

from airflow_provider_sms._compat import AIRFLOW_V_3

if AIRFLOW_V_3 and find_spec("airflow.providers.common.messaging"):
    import pendulum
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
    from airflow.sdk import DAG, Asset, AssetWatcher, task

    from airflow_provider_sms.operators.send import SendSmsOperator

    CUSTOMERS = ["+61400000001", "+61400000002"]

    customer_replies = Asset(
        "customer_replies",
        watchers=[
            AssetWatcher(
                name="customer_replies",
                trigger=MessageQueueTrigger(
                    scheme="sms", conn_id="cloudware_default", from_numbers=CUSTOMERS, poll_interval=30
                ),
            )
        ],
    )

    with DAG(
        dag_id="sms_message_queue",
        schedule=[customer_replies],
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        catchup=False,
        tags=["sms", "example"],
    ) as dag:

        @task
        def senders(triggering_asset_events: dict | None = None) -> list[str]:
            events = (triggering_asset_events or {}).get(customer_replies, [])
            return sorted({event.extra["payload"]["message"]["from_number"] for event in events})

        SendSmsOperator(
            task_id="acknowledge",
            sms_conn_id="cloudware_default",
            to=senders(),
            message="Thanks, we got your reply and will be in touch.",
        )
