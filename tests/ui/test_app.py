"""The SMS page's routes inside Airflow's own API app (the plugin mounted as the API server mounts it),
with Airflow's simple auth manager: no token is 401, viewing needs a role that may read DAGs, changing
opt-outs one that may edit Variables (and JSON), each change leaves an audit line in Airflow's log,
and the page is listed in Airflow's UI navigation."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_sms._compat import AIRFLOW_V_3

if not AIRFLOW_V_3:
    pytest.skip("the SMS page is part of Airflow 3's UI (3.1+)", allow_module_level=True)

from tests.ui import seed

PREFIX = "/sms/ui"


@pytest.fixture(scope="module")
def client(airflow_db: None) -> Iterator[Any]:
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from airflow.configuration import conf
    from fastapi.testclient import TestClient

    before = conf.get("core", "simple_auth_manager_all_admins")
    conf.set("core", "simple_auth_manager_all_admins", "False")  # sign-in on, roles apply
    purge_cached_app()
    try:
        with TestClient(create_app(apps="core")) as opened:
            yield opened
    finally:
        conf.set("core", "simple_auth_manager_all_admins", before)
        purge_cached_app()


def token(role: str | None) -> dict[str, str]:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    user = SimpleAuthManagerUser(username=f"{role or 'nobody'}-user", role=role)
    return {"Authorization": f"Bearer {get_auth_manager().generate_jwt(user)}"}


@pytest.fixture
def seeded(airflow_db: None) -> dict[str, str]:
    from airflow.utils.session import create_session

    names = {"dag": f"dag_{uuid.uuid4().hex[:8]}", "conn": f"conn_{uuid.uuid4().hex[:8]}"}
    with create_session() as session:
        seed.send(
            session,
            names["dag"],
            "manual__1",
            "notify",
            conn_id=names["conn"],
            message="hi",
            accepted=[("+61400000001", "m-1")],
        )
    return names


def test_the_page_is_served_and_listed_in_airflows_navigation(client: Any) -> None:
    page = client.get(f"{PREFIX}/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert all(tab in page.text for tab in ("Outbox", "Inbox", "Opt-outs", "Spend"))
    plugins = client.get("/api/v2/plugins", headers=token("admin")).json()["plugins"]
    (ours,) = [p for p in plugins if p["name"] == "sms_webhooks"]
    (view,) = ours["external_views"]
    assert (view["name"], view["href"], view["url_route"], view["destination"]) == ("SMS", "/sms/ui/", "sms", "nav")
    assert {app["url_prefix"] for app in ours["fastapi_apps"]} == {"/sms/webhooks", PREFIX}


@pytest.mark.parametrize("path", ["me", "connections", "outbox", "inbox?conn_id=x", "spend", "opt-outs"])
def test_every_read_needs_a_signed_in_user(client: Any, path: str) -> None:
    assert client.get(f"{PREFIX}/api/{path}").status_code == 401
    assert client.get(f"{PREFIX}/api/{path}", headers={"Authorization": "Bearer forged"}).status_code == 403
    assert client.get(f"{PREFIX}/api/{path}", headers=token(None)).status_code == 403  # no role: no DAGs
    assert client.get(f"{PREFIX}/api/{path}", headers=token("viewer")).status_code == 200


def test_the_ui_cookie_is_accepted(client: Any, seeded: dict[str, str]) -> None:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    jwt = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="v", role="viewer"))
    answer = client.get(f"{PREFIX}/api/outbox", params={"dag_id": seeded["dag"]}, cookies={COOKIE_NAME_JWT_TOKEN: jwt})
    assert answer.status_code == 200
    (sent,) = answer.json()["sends"]
    assert sent["recipients"][0]["number"] == "+614*****001" and sent["recipients"][0]["status"] == "accepted"
    client.cookies.clear()


def test_a_viewer_reads_but_may_not_change_opt_outs(client: Any) -> None:
    from airflow.utils.session import create_session

    from airflow_provider_sms.ui import data

    with create_session() as session:
        data.register(session).add("+61400000444", source="test")
    viewer = token("viewer")
    listed = client.get(f"{PREFIX}/api/opt-outs", headers=viewer).json()
    assert listed["can_edit"] is False
    (entry,) = [e for e in listed["entries"] if e["number"] == "+614*****444"]
    assert "id" not in entry  # not even a hash of the number
    answer = client.post(f"{PREFIX}/api/opt-outs", json={"number": "+61400000555"}, headers=viewer)
    assert answer.status_code == 403
    assert client.post(f"{PREFIX}/api/opt-outs/remove", json={"id": "0" * 16}, headers=viewer).status_code == 403


def test_an_op_adds_and_removes_an_opt_out_with_an_audit_line_each(client: Any) -> None:
    op = token("op")
    number = f"+614000{uuid.uuid4().int % 100000:05d}"
    masked = number[:4] + "*****" + number[-3:]
    added = client.post(f"{PREFIX}/api/opt-outs", json={"number": number}, headers=op)
    assert added.status_code == 200 and added.json() == {"number": masked, "added": True}
    listed = client.get(f"{PREFIX}/api/opt-outs", headers=op).json()
    assert listed["can_edit"] is True
    (entry,) = [e for e in listed["entries"] if e["number"] == masked]
    assert (entry["source"], entry["by"]) == ("ui:op-user", "op-user")
    removed = client.post(f"{PREFIX}/api/opt-outs/remove", json={"id": entry["id"]}, headers=op)
    assert removed.status_code == 200 and removed.json() == {"number": masked, "removed": True}
    after = client.get(f"{PREFIX}/api/opt-outs", headers=op).json()
    assert masked not in [e["number"] for e in after["entries"]]
    lines = [(a["who"], a["action"], a["number"]) for a in after["audit"] if a["number"] == masked]
    assert lines == [("op-user", "removed", masked), ("op-user", "added", masked)]  # newest first
    assert number not in json.dumps(after)


def test_changes_take_json_only_and_a_phone_number(client: Any) -> None:
    op = token("op")
    form = client.post(
        f"{PREFIX}/api/opt-outs",
        content="number=%2B61400000001",
        headers={**op, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 415
    assert client.post(f"{PREFIX}/api/opt-outs", json={"number": "not a number"}, headers=op).status_code == 400
    assert client.post(f"{PREFIX}/api/opt-outs/remove", json={"id": "0" * 16}, headers=op).status_code == 404


def test_reads_are_bounded_to_the_dags_a_user_may_read(client: Any, seeded: dict[str, str]) -> None:
    from airflow.api_fastapi.app import get_auth_manager

    manager = get_auth_manager()
    original = manager.get_authorized_dag_ids
    try:
        manager.get_authorized_dag_ids = lambda **_: {"some_other_dag"}  # type: ignore[method-assign]
        hidden = client.get(f"{PREFIX}/api/outbox", params={"dag_id": seeded["dag"]}, headers=token("viewer"))
        assert hidden.json()["sends"] == []
    finally:
        manager.get_authorized_dag_ids = original  # type: ignore[method-assign]
    shown = client.get(f"{PREFIX}/api/outbox", params={"dag_id": seeded["dag"]}, headers=token("viewer"))
    assert len(shown.json()["sends"]) == 1
