"""Every notifier test starts with empty alert groups, in memory unless it asks for Airflow's Variables."""

from __future__ import annotations

import pytest

from airflow_provider_sms.state.variables import MemoryKeys


@pytest.fixture(autouse=True)
def store(monkeypatch: pytest.MonkeyPatch) -> MemoryKeys:
    """The alert groups in memory, shared by every notifier of the test (Variables in production)."""
    keys = MemoryKeys()
    monkeypatch.setattr("airflow_provider_sms.notifications.sms.alert_store", lambda: keys)
    return keys
