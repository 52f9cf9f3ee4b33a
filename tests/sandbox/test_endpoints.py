"""The sandbox speaks each provider's documented API: auth, validation, answers, paging, control API."""

from __future__ import annotations

from typing import Any

import pytest
import requests

BEARER = {"Authorization": "Bearer sandbox-token"}


def post(sandbox: Any, path: str, **kwargs: Any) -> requests.Response:
    return requests.post(sandbox.url + path, timeout=5, **kwargs)


@pytest.mark.parametrize(
    ("path", "headers", "body"),
    [
        ("/api/v1/gateway", {}, {"code": 401, "message": "Token expired", "stack": "APIError: Token expired ...."}),
        ("/v1/sms/send", {"Authorization": "Token x"}, {"status": "error", "message": "Unauthenticated."}),
        ("/messages", {"Authorization": "Bearer key"}, None),
    ],
)
def test_each_provider_checks_its_documented_auth_header(sandbox: Any, path: str, headers: dict, body: Any) -> None:
    response = post(sandbox, path, json={}, headers=headers)
    assert response.status_code == 401
    if body is not None:
        assert response.json() == body
    else:
        assert response.json()["error"] == "Invalid or missing Auth token"


def test_cellcast_gateway_reports_invalid_and_unsubscribed(sandbox: Any) -> None:
    requests.post(sandbox.url + "/_sandbox/settings", json={"unsubscribed": ["+61400000003"]}, timeout=5)
    answer = post(
        sandbox,
        "/api/v1/gateway",
        headers=BEARER,
        json={"message": "hi", "contacts": ["0400000001", "61400000002", "400000003", "12345"]},
    ).json()
    data = answer["data"]
    assert answer["status"] is True
    assert [q["Contact"] for q in data["queueResponse"]] == ["400000001", "400000002"]
    assert data["unsubscribeContacts"] == ["400000003"]
    assert data["invalidContacts"][0]["ErrorType"] == "number_not_valid"
    assert (data["totalValidContact"], data["totalInvalidContact"], data["totalUnsubscribeContact"]) == (2, 1, 1)


def test_cellcast_documented_errors(sandbox: Any) -> None:
    assert post(sandbox, "/api/v1/gateway", headers=BEARER, json={"message": "hi", "contacts": []}).status_code == 400
    too_many = {"message": "hi", "contacts": ["0400000001"] * 1001}
    assert post(sandbox, "/api/v1/gateway", headers=BEARER, json=too_many).status_code == 400
    requests.post(sandbox.url + "/_sandbox/settings", json={"registered_senders": ["Acme"], "balance": 1}, timeout=5)
    unregistered = post(
        sandbox,
        "/api/v1/gateway",
        headers=BEARER,
        json={"message": "hi", "contacts": ["0400000001"], "sender": "Other"},
    )
    assert unregistered.status_code == 400
    assert unregistered.json()["error"] == {"sender": "not_registered"}
    broke = post(sandbox, "/api/v1/gateway", headers=BEARER, json={"message": "hi", "contacts": ["0400000001"] * 2})
    assert broke.status_code == 422
    assert "balance is too low" in broke.json()["message"]


def test_cellcast_mms_checks_media(sandbox: Any) -> None:
    fields = {"message": (None, "hi"), "contacts": (None, '["0400000001"]')}
    ok = post(
        sandbox,
        "/api/v1/gatewaymms",
        headers=BEARER,
        files={**fields, "media": ("a.png", b"\x89PNG\r\n\x1a\n", "image/png")},
    )
    assert ok.status_code == 200
    assert len(ok.json()["data"]["queueResponse"]) == 1
    big = post(
        sandbox,
        "/api/v1/gatewaymms",
        headers=BEARER,
        files={**fields, "media": ("a.png", b"\0" * (231 * 1024), "image/png")},
    )
    assert big.status_code == 400
    gif = post(
        sandbox, "/api/v1/gatewaymms", headers=BEARER, files={**fields, "media": ("a.gif", b"GIF89a", "image/gif")}
    )
    assert gif.status_code == 400


def test_cellcast_enforces_15_calls_a_second(sandbox: Any) -> None:
    codes = [
        requests.get(sandbox.url + "/api/v1/apiClient/getResponses", headers=BEARER, timeout=5).status_code
        for _ in range(20)
    ]
    assert codes.count(429) >= 1
    assert codes[:15] == [200] * 15


def test_cellcast_responses_are_paged_newest_first(sandbox: Any) -> None:
    for i in range(60):
        requests.post(
            sandbox.url + "/_sandbox/inbound",
            timeout=5,
            json={
                "provider": "cellcast",
                "from": "0400000001",
                "text": f"r{i}",
                "received_at": f"2030-01-01T00:{i // 60:02d}:{i % 60:02d}Z",
            },
        )
    first = requests.get(sandbox.url + "/api/v1/apiClient/getResponses?page=1", headers=BEARER, timeout=5).json()
    second = requests.get(sandbox.url + "/api/v1/apiClient/getResponses?page=2", headers=BEARER, timeout=5).json()
    assert [i["body"] for i in first["data"]["items"]][:2] == ["r59", "r58"]
    assert len(first["data"]["items"]) == 50
    assert [i["body"] for i in second["data"]["items"]][-1] == "r0"
    assert first["data"]["items"][0]["from"] == "400000001"


def test_clickatell_json_and_xml(sandbox: Any) -> None:
    key = {"Authorization": "my-key"}
    answer = post(sandbox, "/messages", headers=key, json={"content": "hi", "to": ["61400000001", "12"]})
    assert answer.status_code == 202
    assert [m["accepted"] for m in answer.json()["messages"]] == [True, False]
    xml = (
        '<?xml version="1.0"?><SendMessageRequest><Content>hi</Content><To>61400000001</To>'
        "<ScheduledDeliveryTime>2099-01-01T09:00:00+0000</ScheduledDeliveryTime></SendMessageRequest>"
    )
    answer = post(sandbox, "/messages", data=xml, headers={**key, "Content-Type": "application/xml"})
    assert answer.status_code == 202
    assert "<Accepted>true</Accepted>" in answer.text
    stored = requests.get(sandbox.url + "/_sandbox/messages?provider=clickatell", timeout=5).json()["messages"]
    assert [m["status"] for m in stored] == ["queued", "scheduled"]  # delivery progresses from here
    over = post(sandbox, "/messages", headers=key, json={"content": "hi", "to": ["61400000001"] * 201})
    assert over.status_code == 400


def test_cloudware_listing_pages_with_next_page(sandbox: Any) -> None:
    for i in range(120):
        requests.post(
            sandbox.url + "/_sandbox/inbound",
            timeout=5,
            json={
                "provider": "cloudware",
                "from": "+2348012345678",
                "text": f"m{i}",
                "received_at": f"2030-01-01T00:{i // 60:02d}:{i % 60:02d}Z",
            },
        )
    texts, url, pages = [], sandbox.url + "/v1/sms/messages", 0
    while url:
        body = requests.get(url, headers=BEARER, timeout=5).json()
        texts += [d["message"] for d in body["data"]]
        url, pages = body["next_page"], pages + 1
    assert pages == 3
    assert texts == [f"m{i}" for i in reversed(range(120))]


def test_page_shows_conversations_and_the_reply_form_adds_a_message(sandbox: Any) -> None:
    post(sandbox, "/v1/sms/send", headers=BEARER, json={"to": "61400000001", "message": "Reply <b>YES</b>"})
    page = requests.get(sandbox.url + "/", timeout=5).text
    assert "+61400000001" in page
    assert "Reply &lt;b&gt;YES&lt;/b&gt;" in page  # escaped
    assert 'fetch("/_sandbox/inbound"' in page  # the form posts JSON, which no other site's form can
    reply = post(sandbox, "/_sandbox/inbound", json={"from": "+61400000001", "provider": "cloudware", "text": "YES"})
    assert reply.status_code == 201
    stored = requests.get(sandbox.url + "/_sandbox/messages?phone=0400000001", timeout=5).json()["messages"]
    assert [(m["direction"], m["text"]) for m in stored] == [("out", "Reply <b>YES</b>"), ("in", "YES")]


def test_sqlite_file_keeps_messages_across_restarts(tmp_path: Any) -> None:
    from airflow_provider_sms.sandbox.server import SandboxServer

    db = str(tmp_path / "sandbox.db")
    with SandboxServer(db=db) as first:
        requests.post(
            first.url + "/v1/sms/send", headers=BEARER, json={"to": "61400000001", "message": "kept"}, timeout=5
        )
    with SandboxServer(db=db) as second:
        assert [m["text"] for m in second.store.all()] == ["kept"]


def test_command_line_help() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "airflow_provider_sms.sandbox", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--port" in out
    assert "--db" in out


@pytest.mark.parametrize("path", ["/_sandbox/inbound", "/_sandbox/settings", "/_sandbox/faults", "/_sandbox/reset"])
def test_the_control_api_refuses_bodies_a_cross_site_form_could_send(sandbox: Any, path: str) -> None:
    body = '{"provider": "cloudware", "from": "+61400000001", "text": "YES", "balance": 0}'
    for ctype in ("text/plain", "application/x-www-form-urlencoded"):
        answer = post(sandbox, path, data=body, headers={"Content-Type": ctype})
        assert answer.status_code == 415
    assert sandbox.store.all() == []
    assert sandbox.store.settings.balance is None


def test_requests_naming_another_host_are_refused(sandbox: Any) -> None:
    rebound = requests.get(sandbox.url + "/_sandbox/messages", headers={"Host": "attacker.example"}, timeout=5)
    assert rebound.status_code == 421
    injected = post(
        sandbox,
        "/_sandbox/inbound",
        headers={"Host": "attacker.example:8765"},
        json={"provider": "cloudware", "from": "+61400000001", "text": "YES"},
    )
    assert injected.status_code == 421
    assert sandbox.store.all() == []
    for name in ("localhost", "127.0.0.1", "[::1]"):
        ok = requests.get(sandbox.url + "/_sandbox/stats", headers={"Host": f"{name}:8765"}, timeout=5)
        assert ok.status_code == 200


def test_the_command_line_prints_the_port_it_really_got_and_serves_there() -> None:
    import re
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_sms.sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the first line comes only once the port is bound
        found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert found, line
        port = int(found.group(1))
        assert port != 0
        assert requests.get(f"http://127.0.0.1:{port}/favicon.ico", timeout=30).status_code == 200
        taken = subprocess.run(
            [sys.executable, "-m", "airflow_provider_sms.sandbox", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert taken.returncode == 2
        assert taken.stdout == ""  # no URL announced for a server that never ran
        assert f"cannot listen on 127.0.0.1:{port}" in taken.stderr
    finally:
        process.terminate()
        process.wait(timeout=30)
