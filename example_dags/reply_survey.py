"""Wait for many people's replies at once: ask a team, wait (deferred) for each answer, tally them.

One mapped ``InboundSmsSensor`` per person, all deferrable: on Airflow 3.3 the triggerer runs a single
shared poll of the inbox for all of them (and for any other sensor on the same connection), whatever
each one waits for, so a thousand waiting sensors cost one request per poll interval, not a thousand.
"""

from __future__ import annotations

import pendulum

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow.decorators import task
    from airflow.models.dag import DAG

from airflow_provider_sms.operators.send import SendSmsOperator
from airflow_provider_sms.sensors.inbound import InboundSmsSensor

TEAM = ["+61400000011", "+61400000012", "+61400000013", "+61400000014"]

with DAG(
    dag_id="reply_survey",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["sms", "example"],
) as dag:
    ask = SendSmsOperator(
        task_id="ask_the_team",
        sms_conn_id="cloudware_default",
        to=TEAM,
        message="Can you cover the Saturday shift? Reply YES or NO.",
    )

    answers = InboundSmsSensor.partial(
        task_id="wait_for_answer",
        sms_conn_id="cloudware_default",
        match=["YES", "NO"],
        deferrable=True,
        poke_interval=5,
        timeout=30 * 60,
    ).expand(from_numbers=TEAM)

    @task
    def tally(replies: list[dict]) -> dict[str, list[str]]:
        import re

        # One read of every answer. Iterating the lazy sequence would ask for one item past the end,
        # which Airflow answers 404 and logs as "XCom not found" (in the scheduler's log with LocalExecutor).
        replies = list(replies[:])
        said_yes = [r["from_number"] for r in replies if re.search(r"\byes\b", r["text"], re.IGNORECASE)]
        said_no = [r["from_number"] for r in replies if r["from_number"] not in said_yes]
        print(f"{len(said_yes)} can cover Saturday, {len(said_no)} cannot")
        return {"yes": said_yes, "no": said_no}

    ask >> answers
    tally(answers.output)
