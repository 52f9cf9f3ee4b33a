"""Approvals by text on a real Airflow with Postgres and two triggerers: the database arbitrates, not a process.

Two runs of ``sms_approval`` ask the same phone; with ``[triggerer] capacity`` 1 each triggerer runs one
of the two waits. An old "YES" sent before the questions approves neither; a "NO" naming no reference
rejects neither (the phone is told the open references, once); then each answer naming its reference
answers its own question only.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.realstack import require_newest_airflow

pytest.importorskip("airflow.providers.standard.operators.hitl", reason="human-in-the-loop needs Airflow 3.1")
require_newest_airflow()

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

from demo.real_airflow import RealAirflow  # noqa: E402
from tests.conftest import EXAMPLE_DAGS  # noqa: E402
from tests.deadline import wait_for  # noqa: E402

APPROVER = "+61400000002"
DAG_ID, TASK = "sms_approval", "approve_publishing"


@pytest.fixture(scope="module")
def stack(fresh_postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RealAirflow, Any]]:
    from airflow_provider_sms.sandbox.server import SandboxServer

    dags = tmp_path_factory.mktemp("dags")
    (dags / f"{DAG_ID}.py").symlink_to(EXAMPLE_DAGS / f"{DAG_ID}.py")
    with SandboxServer() as sandbox:
        conn = {"conn_type": "cloudware", "host": sandbox.url, "password": "t", "extra": {"country_code": "61"}}
        real = RealAirflow(
            Path(tmp_path_factory.mktemp("airflow")),
            dags,
            connections={"cloudware_default": conn},
            env={"AIRFLOW__TRIGGERER__CAPACITY": "1"},  # one wait per triggerer: the two runs use both
            scheduling=True,
            sql_alchemy_conn=fresh_postgres_url,
            triggerers=2,
        ).start()
        try:
            real.wait_until_ready([DAG_ID], timeout=300)
            yield real, sandbox
        finally:
            real.stop()


def test_replies_answer_only_their_question_across_two_triggerers(stack: tuple[RealAirflow, Any]) -> None:
    real, sandbox = stack

    def reply(text: str, ts: str | None = None) -> None:
        sandbox.store.add_message(
            direction="in", provider="cloudware", phone=APPROVER, text=text, status="received", ts=ts
        )

    def texts() -> list[dict[str, Any]]:
        return [m for m in sandbox.store.all(phone=APPROVER) if m["direction"] == "out"]

    # sent before any question (more than REPLY_SKEW, 1 s, before they are accepted): answers none of them
    reply("YES", ts=(datetime.now(timezone.utc) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    runs = [real.trigger(DAG_ID), real.trigger(DAG_ID)]
    questions = wait_for(lambda: len(texts()) >= 2 and texts(), "both questions", timeout=180)
    refs = {run: next(m for m in questions if run in m["text"])["text"].split("(ref ")[1][:4] for run in runs}
    assert len(set(refs.values())) == 2  # unique among the questions open to the phone
    for run in runs:
        real.wait_for_task_state(DAG_ID, run, TASK, "deferred")

    reply("NO")  # names no reference, with two questions open on two triggerers
    notice = wait_for(lambda: [m for m in texts() if "questions are waiting" in m["text"]], "the notice", timeout=180)
    assert all(ref in notice[0]["text"] for ref in refs.values())
    for run in runs:
        assert real.task_states(DAG_ID, run)[TASK] == "deferred"
        assert not real.hitl_detail(DAG_ID, run, TASK)["response_received"]

    reply(f"yes {refs[runs[0]]}")
    reply(f"no {refs[runs[1]]}")
    assert [real.wait_for_run(DAG_ID, run) for run in runs] == ["success", "success"]
    assert real.task_states(DAG_ID, runs[0])["publish"] == "success"
    assert real.task_states(DAG_ID, runs[1])["publish"] == "skipped"
    assert len([m for m in texts() if "questions are waiting" in m["text"]]) == 1  # told once
