"""An in-memory stand-in for Airflow's Variables as the open-question registry (``state.questions``) uses them."""

from __future__ import annotations

from typing import Any


class MemoryKeys:
    """The registry's three calls over a dict: one store that every try, trigger or stream in a test shares."""

    def __init__(self) -> None:
        self.keys_: dict[str, str] = {}

    def set(self, key: str, value: Any) -> None:
        self.keys_[key] = value

    def keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.keys_ if k.startswith(prefix))

    def delete(self, key: str) -> None:
        self.keys_.pop(key, None)
