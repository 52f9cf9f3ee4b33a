"""The digest goes out from a real triggerer when the group window closes, with no further alert.

A real Airflow 3.3 (API server, scheduler, DAG processor, triggerer; SQLite) runs ``alert_window``
(three mapped loads failing under one key, a 20-second window) and ``example_dags/sms_alert_digests.py``
(the ``AssetWatcher`` running ``SmsAlertDigestTrigger``). The first failure texts at once; the digest
of the other two arrives once the window has closed, sent by the trigger, and the round becomes a run
of the digest DAG.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.realstack import require_newest_airflow

require_newest_airflow()

from demo.real_airflow import RealAirflow  # noqa: E402
from tests.conftest import EXAMPLE_DAGS  # noqa: E402
from tests.deadline import wait_for  # noqa: E402

pytestmark = pytest.mark.slow
PHONE = "+61400000001"


def texts_to(sandbox: Any) -> list[dict[str, Any]]:
    return [m for m in sandbox.store.all(phone=PHONE) if m["direction"] == "out"]


def test_the_triggerer_texts_the_digest_when_the_window_closes(tmp_path: Path) -> None:
    from airflow_provider_sms.sandbox.server import SandboxServer

    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "sms_alert_digests.py").symlink_to(EXAMPLE_DAGS / "sms_alert_digests.py")
    (dags / "alert_window.py").symlink_to(Path(__file__).parent / "dag_alert_window.py")
    with SandboxServer() as sandbox:
        conn = {"conn_type": "cellcast", "host": sandbox.url, "password": "real-airflow-token"}
        real = RealAirflow(tmp_path / "airflow", dags, connections={"cellcast_default": conn}, scheduling=True).start()
        try:
            real.wait_until_ready(["alert_window", "sms_alert_digests"])
            real.unpause("sms_alert_digests")  # its AssetWatcher's trigger runs while the DAG is active
            run_id = real.trigger("alert_window")
            assert real.wait_for_run("alert_window", run_id) == "failed"
            (first,) = wait_for(lambda: texts_to(sandbox) or None, what="the first alert")
            assert first["text"].startswith("Airflow FAILED: alert_window.load try 1 ")
            sent_first = time.monotonic()
            digest = wait_for(
                lambda: next((m for m in texts_to(sandbox) if m["seq"] != first["seq"]), None),
                what="the digest",
                timeout=150,
            )
            waited = time.monotonic() - sent_first
            assert digest["text"].startswith("alert_window.load: 2 more failures since ")
            assert "RuntimeError" in digest["text"]
            gap = datetime.fromisoformat(digest["ts"]) - datetime.fromisoformat(first["ts"])
            assert gap.total_seconds() >= 19  # not before the window closed
            assert waited < 90  # within the trigger's look (30 s) after the window's end, not lazily
            runs = wait_for(lambda: real.runs_of("sms_alert_digests"), what="a run of the digest DAG", timeout=120)
            assert runs
            assert len(texts_to(sandbox)) == 2  # one alert, one digest
        finally:
            real.stop()
