"""The webhook routes over HTTP (FastAPI's test client): what is accepted, what is refused with nothing
recorded, and that no secret reaches a log."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest

from airflow_provider_sms._compat import AIRFLOW_V_3

if not AIRFLOW_V_3:
    pytest.skip("the webhook receiver is an Airflow 3 plugin", allow_module_level=True)

from fastapi.testclient import TestClient

from airflow_provider_sms.webhooks.app import create_app
from airflow_provider_sms.webhooks.receiver import MAX_BODY, presented_secret, secret_matches
from airflow_provider_sms.webhooks.recorder import Recorded
from tests.hooks.test_delivery_and_webhooks import CELLCAST_STATUS, CLICKATELL_STATUS, CLOUDWARE_RECEIVED

SECRET = "whsec-0123456789abcdef"


class FakeRecorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[Any], list[Any]]] = []

    def record(self, conn_id: str, messages: Any, reports: Any) -> Recorded:
        self.calls.append((conn_id, list(messages), list(reports)))
        return Recorded(recorded=len(self.calls[-1][1]) + len(self.calls[-1][2]))


@pytest.fixture
def recorder() -> FakeRecorder:
    return FakeRecorder()


@pytest.fixture
def client(make_conn: Any, recorder: FakeRecorder) -> TestClient:
    make_conn("cloudware_default", "cloudware", webhook_secret=SECRET)
    make_conn("clickatell_default", "clickatell", webhook_secret=SECRET)
    make_conn("cellcast_default", "cellcast", webhook_secret=SECRET)
    make_conn("no_secret", "cloudware")
    make_conn("not_sms", "http", webhook_secret=SECRET)
    return TestClient(create_app(recorder=recorder))


def test_a_reply_with_the_secret_is_read_and_recorded(client: TestClient, recorder: FakeRecorder) -> None:
    answer = client.post(f"/cloudware_default/inbound?secret={SECRET}", json=CLOUDWARE_RECEIVED)
    assert answer.status_code == 200
    assert answer.json() == {"read": 1, "recorded": 1}
    ((conn_id, (message,), reports),) = recorder.calls
    assert conn_id == "cloudware_default" and reports == []
    assert message.message_id == "1234567890" and message.text == "Hello, World!"


def test_cellcast_status_url_records_a_report(client: TestClient, recorder: FakeRecorder) -> None:
    answer = client.post(f"/cellcast_default/status?secret={SECRET}", json=CELLCAST_STATUS)
    assert answer.status_code == 200
    ((_, messages, (report,)),) = recorder.calls
    assert messages == [] and report.status == "delivered"


def test_clickatell_status_by_basic_auth_as_json_and_as_a_get(client: TestClient, recorder: FakeRecorder) -> None:
    basic = "Basic " + base64.b64encode(f"airflow:{SECRET}".encode()).decode()
    posted = client.post("/clickatell_default/status", json=CLICKATELL_STATUS, headers={"Authorization": basic})
    query = {k: str(v) for k, v in CLICKATELL_STATUS.items()}
    got = client.get("/clickatell_default/status", params={**query, "secret": SECRET})
    assert posted.status_code == got.status_code == 200
    (first, second) = [reports[0] for _, _, reports in recorder.calls]
    assert first.status == second.status == "delivered"
    assert "secret" not in second.raw  # the secret is not part of the report


NOT_FOUND = {"detail": "Not Found"}


@pytest.mark.parametrize(
    "path",
    [
        "/cloudware_default/inbound",  # no secret
        "/cloudware_default/inbound?secret=wrong",
        f"/cloudware_default/inbound?secret={SECRET}x",
        f"/no_secret/inbound?secret={SECRET}",  # a connection without a secret takes no webhook
        "/no_secret/inbound?secret=",
        f"/not_sms/inbound?secret={SECRET}",  # not an SMS connection
        f"/missing/inbound?secret={SECRET}",
        f"/{'x' * 300}/inbound?secret={SECRET}",
        f"/cloudware_default/elsewhere?secret={SECRET}",
    ],
)
def test_every_refusal_looks_the_same_and_records_nothing(
    client: TestClient, recorder: FakeRecorder, path: str
) -> None:
    answer = client.post(path, json=CLOUDWARE_RECEIVED)
    assert (answer.status_code, answer.json()) == (404, NOT_FOUND)
    assert recorder.calls == []


def test_wrong_basic_auth_is_refused(client: TestClient, recorder: FakeRecorder) -> None:
    for header in ("Basic " + base64.b64encode(b"airflow:nope").decode(), "Basic !!!", f"Bearer {SECRET}"):
        answer = client.post("/clickatell_default/status", json=CLICKATELL_STATUS, headers={"Authorization": header})
        assert answer.status_code == 404
    assert recorder.calls == []


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        (b"{}", {"Content-Type": "text/plain"}, 415),
        (b"type=message_received", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
        (b"{not json", {"Content-Type": "application/json"}, 400),
        (b"\xff\xfe", {"Content-Type": "application/json"}, 400),
        (b"[" + b"1," * MAX_BODY + b"1]", {"Content-Type": "application/json"}, 413),
    ],
)
def test_bad_bodies_are_refused_with_nothing_recorded(
    client: TestClient, recorder: FakeRecorder, content: bytes, headers: dict[str, str], status: int
) -> None:
    answer = client.post(f"/cloudware_default/inbound?secret={SECRET}", content=content, headers=headers)
    assert answer.status_code == status
    assert recorder.calls == []


def test_a_chunked_body_over_the_cap_is_refused_without_a_declared_length(
    client: TestClient, recorder: FakeRecorder
) -> None:
    def chunks() -> Any:
        for _ in range(70):
            yield b" " * 1024

    answer = client.post(
        f"/cloudware_default/inbound?secret={SECRET}", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 413
    assert recorder.calls == []


def test_a_payload_the_provider_format_does_not_describe_is_acknowledged(
    client: TestClient, recorder: FakeRecorder
) -> None:
    answer = client.post(f"/cloudware_default/inbound?secret={SECRET}", json={"hello": "world"})
    assert (answer.status_code, answer.json()) == (200, {"read": 0})


def test_a_database_failure_asks_the_provider_to_call_again(make_conn: Any) -> None:
    class Broken(FakeRecorder):
        def record(self, conn_id: str, messages: Any, reports: Any) -> Recorded:
            raise RuntimeError("database is locked")

    make_conn("cloudware_default", "cloudware", webhook_secret=SECRET)
    answer = TestClient(create_app(recorder=Broken())).post(
        f"/cloudware_default/inbound?secret={SECRET}", json=CLOUDWARE_RECEIVED
    )
    assert answer.status_code == 503


def test_no_secret_or_token_reaches_the_logs(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client.post(f"/cloudware_default/inbound?secret={SECRET}", json={"message": SECRET})
    client.post("/cloudware_default/inbound?secret=guess-" + SECRET[:8], json=CLOUDWARE_RECEIVED)
    client.post(f"/missing/inbound?secret={SECRET}", json=CLOUDWARE_RECEIVED)
    assert SECRET not in caplog.text and SECRET[:8] not in caplog.text


def test_reading_the_secret() -> None:
    assert presented_secret("q", "Basic " + base64.b64encode(b"u:p").decode()) == "q"  # the URL's wins
    assert presented_secret(None, "basic " + base64.b64encode(b"u:p:q").decode()) == "p:q"
    assert presented_secret(None, "Basic " + base64.b64encode(b"nocolon").decode()) is None
    assert presented_secret(None, "Basic " + base64.b64encode(b"u:").decode()) is None
    assert presented_secret(None, None) is None
    assert secret_matches("s", "s") and not secret_matches("s", "S")
    assert not secret_matches(None, "x") and not secret_matches("", "") and not secret_matches("s", None)


def test_the_plugin_mounts_the_app_under_sms_webhooks() -> None:
    from airflow import plugins_manager

    apps, _ = plugins_manager.get_fastapi_plugins()
    (ours,) = [a for a in apps if a["name"] == "SMS webhooks"]
    assert ours["url_prefix"] == "/sms/webhooks"
    assert json.dumps(sorted(r.path for r in ours["app"].routes if "conn_id" in r.path)) == json.dumps(
        ["/{conn_id}/inbound", "/{conn_id}/status"]
    )
