"""Fixtures for the real-stack tests: a throwaway Postgres cluster (see ``tests/realstack/postgres.py``)."""

from __future__ import annotations

from tests.realstack.postgres import fresh_postgres_url, postgres_server, postgres_url

__all__ = ["fresh_postgres_url", "postgres_server", "postgres_url"]
