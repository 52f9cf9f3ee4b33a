"""``state.variables``: one key-store contract, kept by the ORM path (the suite's Airflow metadata
database, as the API server, the CLI and Airflow 2.11 reach it) and by ``MemoryKeys``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_sms.state.variables import KeyStore, MemoryKeys, VariableKeys, in_task_runtime, keys_listable

PREFIX = "sms_test_vk."


@pytest.fixture(params=["orm", "memory"])
def store(request: pytest.FixtureRequest) -> Iterator[KeyStore]:
    if request.param == "memory":
        yield MemoryKeys()
        return
    request.getfixturevalue("airflow_db")
    orm = VariableKeys()

    def empty() -> None:
        for key in orm.keys("sms_test_vk"):
            orm.delete(key)

    empty()
    yield orm
    empty()


def test_set_get_overwrite_and_delete(store: KeyStore) -> None:
    assert store.get(PREFIX + "a") is None
    store.set(PREFIX + "a", '{"n": 1}')
    assert store.get(PREFIX + "a") == '{"n": 1}'
    store.set(PREFIX + "a", "second")
    assert store.get(PREFIX + "a") == "second"
    store.delete(PREFIX + "a")
    store.delete(PREFIX + "a")  # deleting what is gone is fine
    assert store.get(PREFIX + "a") is None


def test_get_many_returns_only_what_exists_in_one_call_for_many_keys(store: KeyStore) -> None:
    for i in range(0, 1200, 7):
        store.set(f"{PREFIX}{i:05d}", str(i))
    wanted = [f"{PREFIX}{i:05d}" for i in range(1200)]  # more than one IN slice of 500
    found = store.get_many(wanted + wanted[:3])
    assert found == {f"{PREFIX}{i:05d}": str(i) for i in range(0, 1200, 7)}
    assert store.get_many([]) == {}


def test_keys_lists_a_prefix_literally(store: KeyStore) -> None:
    store.set(PREFIX + "x.1", "1")
    store.set(PREFIX + "x.2", "2")
    store.set("sms_test_vkZx.3", "3")  # "_" and "." are not wildcards
    store.set("sms_test_vk%.4", "4")
    assert list(store.keys(PREFIX + "x.")) == [PREFIX + "x.1", PREFIX + "x.2"]
    assert list(store.keys("sms_test_vk%")) == ["sms_test_vk%.4"]
    store.delete("sms_test_vkZx.3")
    store.delete("sms_test_vk%.4")


def test_an_orm_session_given_by_the_caller_commits_with_the_caller(airflow_db: None) -> None:
    from airflow.utils.session import create_session

    key = PREFIX + "in-transaction"
    with create_session() as session:
        VariableKeys(session).set(key, "kept")
        assert VariableKeys(session).get(key) == "kept"  # visible inside the transaction
        session.rollback()
    assert VariableKeys().get(key) is None  # rolled back with the caller's transaction
    with create_session() as session:
        VariableKeys(session).set(key, "kept")
    assert VariableKeys().get(key) == "kept"
    VariableKeys().delete(key)


def test_a_set_is_one_upsert_statement_stored_as_airflow_stores_variables(airflow_db: None) -> None:
    """Two processes setting one new key at once must both succeed (the later write wins): a set is one
    INSERT ... ON CONFLICT UPDATE, never a look then an insert that a rival's insert can break (the
    Postgres run in ``tests/realstack/test_opt_outs_postgres.py`` races it for real). The value is stored
    as Airflow stores it: Airflow's own ``Variable.get`` reads it back."""
    import sqlalchemy as sa
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    key = PREFIX + "upserted"
    with create_session() as session:
        statements: list[str] = []

        def seen(*args: object) -> None:
            statements.append(str(args[2]))

        sa.event.listen(session.get_bind(), "before_cursor_execute", seen)
        try:
            VariableKeys(session).set(key, "first")
            assert VariableKeys(session).get(key) == "first"
            VariableKeys(session).set(key, "second")  # the row exists now, in this session too
            assert VariableKeys(session).get(key) == "second"
        finally:
            sa.event.remove(session.get_bind(), "before_cursor_execute", seen)
    writes = [s for s in statements if s.lstrip().upper().startswith(("INSERT", "UPDATE"))]
    assert len(writes) == 2 and all("ON CONFLICT" in s.upper() for s in writes)
    assert Variable.get(key) == "second"
    VariableKeys().delete(key)


def test_outside_a_task_the_orm_is_used_and_keys_can_be_listed() -> None:
    assert in_task_runtime() is False
    assert keys_listable() is True
