"""Trigger tests poll a loopback sandbox: let them poll faster than the 1 s production minimum."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow_provider_sms.core.inbound as inbound

    monkeypatch.setattr(inbound, "MIN_POLL_INTERVAL", 0.01)
