"""The in-memory stand-in for Airflow's Variables that tests share (``state.variables.MemoryKeys``)."""

from __future__ import annotations

from airflow_provider_sms.state.variables import MemoryKeys

__all__ = ["MemoryKeys"]
