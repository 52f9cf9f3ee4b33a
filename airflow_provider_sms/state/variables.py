"""Airflow Variables as a key store, reached the way the calling process may reach them.

Several kinds of durable state (question claims, the opt-out register, alert groups) are sets of
Variable keys, because Variables are the one store that a task, a trigger, a callback, the API server
and the CLI can all read and write on every supported Airflow. Who may use what differs:

- a task, trigger or callback process on Airflow 3 talks to its supervisor (``airflow.sdk.Variable``,
  served by the execution API; ``keys(prefix)`` needs Airflow 3.3);
- the API server, the CLI, the scheduler and every process on Airflow 2.11 use the ORM
  (``airflow.models.Variable`` rows, one query per call, several keys in one ``IN``).

``VariableKeys`` picks per call, so one object works wherever it is used. ``MemoryKeys`` is the same
interface over a dict, for tests and for code running outside Airflow. Values are strings (callers
encode JSON themselves); a missing key reads as ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol


class KeyStore(Protocol):
    """The calls durable state needs from Airflow's Variables."""

    def get(self, key: str) -> str | None: ...

    def get_many(self, keys: Iterable[str]) -> dict[str, str]: ...

    def set(self, key: str, value: str) -> None: ...

    def keys(self, prefix: str) -> Sequence[str]: ...

    def delete(self, key: str) -> None: ...


def in_task_runtime() -> bool:
    """Whether this process talks to an Airflow 3 supervisor (a task, trigger or callback runner)."""
    try:
        from airflow.sdk.execution_time import task_runner
    except ImportError:
        return False
    return getattr(task_runner, "SUPERVISOR_COMMS", None) is not None


def keys_listable() -> bool:
    """Whether ``keys(prefix)`` works here: always through the ORM, from a task only on Airflow 3.3+."""
    if not in_task_runtime():
        return True
    from airflow.sdk import Variable

    return hasattr(Variable, "keys")


class VariableKeys:
    """``KeyStore`` over Airflow's Variables: the Task SDK inside a task/trigger runtime, else the ORM.

    :param session: an ORM session to use (the API server passes its request's session so that a write
        commits with the rest of the request); without one each ORM call opens and commits its own.
    """

    def __init__(self, session: Any = None) -> None:
        self.session = session

    # --- the Task SDK (Airflow 3, inside a task, trigger or callback) ---------------------------

    @staticmethod
    def _sdk() -> Any:
        from airflow.sdk import Variable

        return Variable

    # --- the ORM (API server, CLI, Airflow 2.11) ------------------------------------------------

    @staticmethod
    def _model() -> Any:
        from airflow.models.variable import Variable

        return Variable

    def _orm(self, work: Any) -> Any:
        if self.session is not None:
            return work(self.session)
        from airflow.utils.session import create_session

        with create_session() as session:
            return work(session)

    # --- KeyStore -------------------------------------------------------------------------------

    def get(self, key: str) -> str | None:
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        if in_task_runtime():
            variable = self._sdk()
            found = {}
            for key in wanted:
                value = variable.get(key, None)
                if value is not None:
                    found[key] = value
            return found
        model = self._model()

        def query(session: Any) -> dict[str, str]:
            found: dict[str, str] = {}
            for start in range(0, len(wanted), 500):
                chosen = session.query(model).filter(model.key.in_(wanted[start : start + 500]))
                rows = chosen.populate_existing().all()  # a row this session set (by statement) reads fresh
                found.update({row.key: row.val for row in rows})
            return found

        return self._orm(query)

    def set(self, key: str, value: str) -> None:
        if in_task_runtime():
            self._sdk().set(key, value)
            return
        model = self._model()
        self._orm(lambda session: _upsert(session, model, key, value))

    def keys(self, prefix: str) -> Sequence[str]:
        if in_task_runtime():
            return list(self._sdk().keys(prefix=prefix))
        model = self._model()
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"

        def listing(session: Any) -> list[str]:
            rows = session.query(model.key).filter(model.key.like(pattern, escape="\\")).order_by(model.key)
            return [row[0] for row in rows]

        return self._orm(listing)

    def delete(self, key: str) -> None:
        if in_task_runtime():
            self._sdk().delete(key)
            return
        model = self._model()
        self._orm(lambda session: session.query(model).filter(model.key == key).delete())


def _upsert(session: Any, model: Any, key: str, value: str) -> None:
    """Set one Variable row in one statement (insert, or update when the key exists), so that two
    processes setting a new key at the same moment both succeed, the later write winning. The value is
    stored as Airflow would store it (``model(...)`` encrypts it when a Fernet key is set)."""
    probe = model(key=key, val=value)
    row = {"key": key, "val": probe._val, "is_encrypted": bool(probe.is_encrypted)}
    changed = {"val": row["val"], "is_encrypted": row["is_encrypted"]}
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):  # the same ON CONFLICT clause, from each dialect's module
        from importlib import import_module

        insert: Any = import_module(f"sqlalchemy.dialects.{dialect}").insert
        statement = insert(model.__table__).values(**row)
        session.execute(statement.on_conflict_do_update(index_elements=["key"], set_=changed))
    elif dialect == "mysql":
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        session.execute(mysql_insert(model.__table__).values(**row).on_duplicate_key_update(**changed))
    else:  # a database without an upsert statement: look, then insert or update
        existing = session.query(model).filter(model.key == key).one_or_none()
        if existing is None:
            session.add(model(key=key, val=value))
        else:
            existing.val = value
    session.flush()


class MemoryKeys:
    """``KeyStore`` over a dict: tests, and code running with no Airflow metadata database."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        return {key: self.values[key] for key in keys if key in self.values}

    def set(self, key: str, value: str) -> None:
        self.values[key] = value

    def keys(self, prefix: str) -> list[str]:
        return sorted(key for key in self.values if key.startswith(prefix))

    def delete(self, key: str) -> None:
        self.values.pop(key, None)
