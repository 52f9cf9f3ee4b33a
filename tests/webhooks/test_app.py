"""The webhook routes over HTTP (FastAPI's test client): what is accepted, what is refused with nothing
recorded, and that no secret reaches a log."""

from __future__ import annotations

import base64
import json
import logging
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_sms._compat import AIRFLOW_V_3

if not AIRFLOW_V_3:
    pytest.skip("the webhook receiver is an Airflow 3 plugin", allow_module_level=True)

from fastapi.testclient import TestClient

from airflow_provider_sms.core.phone import mask_number
from airflow_provider_sms.webhooks.app import create_app
from airflow_provider_sms.webhooks.receiver import (
    MAX_BODY,
    Hooks,
    Transient,
    Unrecordable,
    presented_secret,
    secret_matches,
)
from airflow_provider_sms.webhooks.recorder import Recorded
from tests.hooks.test_delivery_and_webhooks import (
    CELLCAST_STATUS,
    CLICKATELL_REPLY,
    CLICKATELL_STATUS,
    CLOUDWARE_RECEIVED,
)

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
            raise Transient("OperationalError: database is locked")

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


# --- permanent and transient faults, operators' warnings, personal data in logs --------------------------

PERSON = "+61412340123"
CLOUDWARE_FROM_PERSON = {**CLOUDWARE_RECEIVED, "from": PERSON, "message": "my private words"}


class Refusing(FakeRecorder):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def record(self, conn_id: str, messages: Any, reports: Any) -> Recorded:
        super().record(conn_id, messages, reports)
        raise self.error


def refusing_client(make_conn: Any, error: Exception) -> TestClient:
    make_conn("cloudware_default", "cloudware", webhook_secret=SECRET)
    return TestClient(create_app(hooks=Hooks(), recorder=Refusing(error)))


def test_json_nested_beyond_any_provider_is_refused_for_good(
    client: TestClient, recorder: FakeRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    nested = b'{"a":' * 40 + b"1" + b"}" * 40
    answer = client.post(
        f"/cloudware_default/inbound?secret={SECRET}", content=nested, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 422 and "nests deeper" in answer.json()["detail"]
    assert recorder.calls == []
    assert len([r for r in caplog.records if "422" in r.getMessage()]) == 1


def test_an_unrecordable_item_is_422_logged_once_with_the_number_masked(
    make_conn: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    answer = refusing_client(make_conn, Unrecordable("a inbound item holds text that is not valid Unicode")).post(
        f"/cloudware_default/inbound?secret={SECRET}", json=CLOUDWARE_FROM_PERSON
    )
    assert answer.status_code == 422 and answer.json() == {
        "detail": "a inbound item holds text that is not valid Unicode"
    }
    (line,) = [r.getMessage() for r in caplog.records if "422" in r.getMessage()]
    assert mask_number(PERSON) in line
    assert PERSON not in caplog.text and "my private words" not in caplog.text


def test_a_transient_fault_is_503_with_retry_after_and_no_personal_data(
    make_conn: Any, caplog: pytest.LogCaptureFixture
) -> None:
    answer = refusing_client(make_conn, Transient("OperationalError: connection refused")).post(
        f"/cloudware_default/inbound?secret={SECRET}", json=CLOUDWARE_FROM_PERSON
    )
    assert answer.status_code == 503 and answer.headers["Retry-After"].isdigit()
    assert PERSON not in caplog.text and "my private words" not in caplog.text


def test_an_unexpected_fault_is_500_and_logs_only_its_class(make_conn: Any, caplog: pytest.LogCaptureFixture) -> None:
    answer = refusing_client(make_conn, RuntimeError(f"boom {PERSON} my private words")).post(
        f"/cloudware_default/inbound?secret={SECRET}", json=CLOUDWARE_FROM_PERSON
    )
    assert answer.status_code == 500
    assert "RuntimeError" in caplog.text and PERSON not in caplog.text and "private" not in caplog.text


@pytest.mark.parametrize(
    "when",
    [None, "", "sometime", "99999-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", 10**30],
    ids=["missing", "empty", "garbage", "year-99999", "year-1-offset", "huge-epoch"],
)
def test_a_reply_without_a_readable_time_is_recorded_with_the_receive_time_flagged(
    client: TestClient, recorder: FakeRecorder, when: Any
) -> None:
    body = {**CLOUDWARE_RECEIVED, "created_at": when, "sent_at": when}
    answer = client.post(f"/cloudware_default/inbound?secret={SECRET}", json=body)
    assert (answer.status_code, answer.json()) == (200, {"read": 1, "recorded": 1})
    ((_, (message,), _),) = recorder.calls
    assert message.received_at_estimated and message.to_dict()["received_at_estimated"] is True
    assert abs((message.received_at - datetime.now(timezone.utc)).total_seconds()) < 60


def test_cellcast_and_clickatell_replies_without_a_time_are_recorded_too(
    client: TestClient, recorder: FakeRecorder
) -> None:
    old_form = {"from": "+61400000001", "body": "YES", "message_id": "c-1"}
    assert client.post(f"/cellcast_default/inbound?secret={SECRET}", json=old_form).json()["read"] == 1
    reply = {**CLICKATELL_REPLY["event"]["moText"][0]}  # type: ignore[index]
    reply.pop("timestamp")
    body = {"event": {"moText": [reply]}}
    assert client.post(f"/clickatell_default/inbound?secret={SECRET}", json=body).json()["read"] == 1
    assert all(m.received_at_estimated for _, messages, _ in recorder.calls for m in messages)


def test_a_reply_without_an_id_gets_the_same_id_on_every_retry(client: TestClient, recorder: FakeRecorder) -> None:
    reply = {**CLICKATELL_REPLY["event"]["moText"][0]}  # type: ignore[index]
    reply.pop("messageId")
    untimed = {k: v for k, v in reply.items() if k != "timestamp"}
    for body in (reply, reply, untimed, untimed):
        client.post(f"/clickatell_default/inbound?secret={SECRET}", json={"event": {"moText": [body]}})
    ids = [messages[0].message_id for _, messages, _ in recorder.calls]
    assert ids[0] == ids[1] and ids[2] == ids[3] and ids[0].startswith("derived-")


@pytest.mark.parametrize("conn_id", ["cloudware%20default", "cloudware_default%3B", "a%24b"])
def test_an_id_airflow_would_not_accept_is_not_found(client: TestClient, recorder: FakeRecorder, conn_id: str) -> None:
    answer = client.post(f"/{conn_id}/inbound?secret={SECRET}", json=CLOUDWARE_RECEIVED)
    assert (answer.status_code, answer.json()) == (404, NOT_FOUND)
    assert recorder.calls == []


def test_a_connection_without_a_secret_is_named_at_start_up_and_when_called(
    make_conn: Any, recorder: FakeRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    make_conn("cloudware_default", "cloudware", webhook_secret=SECRET)
    make_conn("open_door", "cloudware")
    app = create_app(recorder=recorder)
    startup = [r.getMessage() for r in caplog.records if "'open_door'" in r.getMessage()]
    assert len(startup) == 1 and "webhook_secret" in startup[0]
    assert not [r for r in caplog.records if "'cloudware_default'" in r.getMessage()]
    caplog.clear()
    client = TestClient(app)
    for _ in range(3):
        assert client.post(f"/open_door/inbound?secret={SECRET}", json=CLOUDWARE_RECEIVED).status_code == 404
    warned = [r for r in caplog.records if "'open_door'" in r.getMessage() and r.levelno == logging.WARNING]
    assert len(warned) == 1 and "webhook_secret" in warned[0].getMessage()


def test_a_failed_connection_lookup_is_503_and_not_remembered(
    make_conn: Any, recorder: FakeRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import airflow_provider_sms.webhooks.receiver as receiver

    make_conn("cloudware_default", "cloudware", webhook_secret=SECRET)
    down = {"now": True}
    monkeypatch.setattr(receiver, "metadata_database_answers", lambda: not down["now"])
    import airflow_provider_sms.hooks as hooks_module

    real_get = hooks_module.get_sms_hook

    def get_sms_hook(conn_id: str) -> Any:
        if down["now"]:  # what Airflow raises when every secrets backend failed
            raise type("AirflowNotFoundException", (Exception,), {})("not defined")
        return real_get(conn_id)

    monkeypatch.setattr(hooks_module, "get_sms_hook", get_sms_hook)
    client = TestClient(create_app(hooks=Hooks(), recorder=recorder))
    url = f"/cloudware_default/inbound?secret={SECRET}"
    first = client.post(url, json=CLOUDWARE_RECEIVED)
    assert first.status_code == 503 and first.headers["Retry-After"]
    down["now"] = False
    assert client.post(url, json=CLOUDWARE_RECEIVED).status_code == 200  # at once, not after 30 s


def test_an_unknown_connection_is_remembered_only_when_the_database_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow_provider_sms.webhooks.receiver as receiver

    monkeypatch.setattr(receiver, "metadata_database_answers", lambda: True)
    hooks = Hooks()
    assert hooks.get("never_defined_anywhere") is None
    assert "never_defined_anywhere" in hooks._cache


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({**CLOUDWARE_RECEIVED, "message_id": "id-\ud800"}, "not valid Unicode"),
        ({**CLOUDWARE_RECEIVED, "message": "a\u0000b"}, "NUL"),
    ],
    ids=["lone-surrogate-in-id", "nul-in-text"],
)
def test_bodies_the_database_could_never_store_are_422_before_any_write(
    make_conn: Any, caplog: pytest.LogCaptureFixture, body: dict[str, Any], reason: str
) -> None:
    from airflow_provider_sms.webhooks.recorder import AssetRecorder

    class Recorder(AssetRecorder):
        def _record(self, *args: Any) -> Any:
            raise AssertionError("nothing may reach the database")

    make_conn("cloudware_default", "cloudware", webhook_secret=SECRET)
    client = TestClient(create_app(hooks=Hooks(), recorder=Recorder()))
    answer = client.post(
        f"/cloudware_default/inbound?secret={SECRET}",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 422 and reason in answer.json()["detail"]
    assert len([r for r in caplog.records if "422" in r.getMessage()]) == 1


def test_events_go_to_the_id_the_connection_is_stored_under() -> None:
    from types import SimpleNamespace

    from airflow_provider_sms.webhooks.app import stored_id

    hook = SimpleNamespace(connection=SimpleNamespace(conn_id="cloudware_default"))
    assert stored_id(hook, "Cloudware_Default") == "cloudware_default"  # a case-blind database found it
    assert stored_id(hook, "other") == "other"
    assert stored_id(SimpleNamespace(), "x") == "x"
