"""The sandbox's delivery progression, its Cellcast report endpoint, and the webhooks it calls: each
provider's format (read back by our own hooks), retries on failures, Clickatell's GET form."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from airflow_provider_sms.sandbox.delivery import DeliveryPlan
from airflow_provider_sms.sandbox.store import stamp

BEARER = {"Authorization": "Bearer sandbox-token"}


def row(ts: datetime, phone: str = "+61400000031", scheduled: datetime | None = None) -> dict[str, Any]:
    return {
        "direction": "out",
        "status": "queued",
        "phone": phone,
        "ts": stamp(ts),
        "scheduled_for": stamp(scheduled) if scheduled else None,
    }


def test_delivery_progresses_with_the_clock() -> None:
    plan = DeliveryPlan(sent_after=1, final_after=3)
    sent = datetime(2030, 1, 1, 9, tzinfo=timezone.utc)
    at = [sent + timedelta(seconds=s) for s in (0, 1, 2.9, 3)]
    assert [plan.status(row(sent), now) for now in at] == ["queued", "sent", "sent", "delivered"]
    later = sent + timedelta(hours=1)
    assert plan.status(row(sent, scheduled=later), sent + timedelta(minutes=5)) == "scheduled"
    assert plan.status(row(sent, scheduled=later), later + timedelta(seconds=3)) == "delivered"
    for phone, outcome in (("+61400000911", "failed"), ("+61400000912", "expired"), ("+61400000913", "unsubscribed")):
        assert plan.status(row(sent, phone), sent + timedelta(seconds=3)) == outcome


def test_outcomes_and_delays_are_set_through_the_control_api(sandbox: Any) -> None:
    answer = requests.post(
        sandbox.url + "/_sandbox/delivery",
        json={"sent_after": 0, "final_after": 0, "outcomes": {"0400000031": "rejected"}},
        timeout=5,
    )
    assert answer.json()["outcomes"] == {"+61400000031": "rejected"}
    for bad in ({"sent_after": 5, "final_after": 1}, {"outcomes": {"0400000031": "lost"}}, {"final_after": "x"}):
        assert requests.post(sandbox.url + "/_sandbox/delivery", json=bad, timeout=5).status_code == 400


def test_cellcast_report_endpoint(sandbox: Any) -> None:
    sandbox.store.settings.delivery.update({"sent_after": 0, "final_after": 0})
    sent = requests.post(
        sandbox.url + "/api/v1/gateway", headers=BEARER, json={"message": "hi", "contacts": ["0400000913"]}, timeout=5
    ).json()
    message_id = sent["data"]["queueResponse"][0]["MessageId"]
    answer = requests.get(f"{sandbox.url}/api/v2/report/message/{message_id}", headers=BEARER, timeout=5)
    data = answer.json()["data"]
    assert answer.json()["status"] is True
    assert (data["_id"], data["status"], data["replyStop"], data["receiver"]) == (
        message_id,
        "delivered",
        True,
        "400000913",
    )
    missing = requests.get(f"{sandbox.url}/api/v2/report/message/nope", headers=BEARER, timeout=5)
    assert missing.status_code == 404
    assert requests.get(f"{sandbox.url}/api/v2/report/message/{message_id}", timeout=5).status_code == 401


class Receiver:
    """A loopback HTTP server recording every call; the first ``failures`` answers are 500."""

    def __init__(self, failures: int = 0) -> None:
        self.calls: list[dict[str, Any]] = []
        self.failures = failures
        self.arrived = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                with outer.arrived:
                    outer.calls.append(
                        {
                            "method": self.command,
                            "path": parts.path,
                            "query": dict(parse_qsl(parts.query)),
                            "json": json.loads(body) if body else None,
                            "auth": self.headers.get("Authorization"),
                        }
                    )
                    failing = outer.failures > 0
                    outer.failures -= failing
                    outer.arrived.notify_all()
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 60) -> list[dict[str, Any]]:
        """The calls, once at least ``count`` arrived; fails the test after ``timeout`` seconds."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.calls) >= count, timeout):
                pytest.fail(f"{len(self.calls)} webhook call(s) arrived within {timeout}s, expected {count}")
            return list(self.calls)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.server.shutdown()


def configure(sandbox: Any, **body: Any) -> requests.Response:
    return requests.post(sandbox.url + "/_sandbox/webhooks", json=body, timeout=5)


def test_cloudware_reply_and_sent_report_in_its_webhook_format(
    sandbox: Any, receiver: Receiver, make_conn: Any
) -> None:
    from airflow_provider_sms.hooks.cloudware import CloudwareHook

    sandbox.store.settings.delivery.update({"sent_after": 0.1, "final_after": 0.2})
    configure(sandbox, provider="cloudware", inbound=f"{receiver.url}/in?secret=s3", status=f"{receiver.url}/st")
    requests.post(
        sandbox.url + "/_sandbox/inbound",
        json={"provider": "cloudware", "from": "0400000001", "text": "YES"},
        timeout=5,
    )
    requests.post(sandbox.url + "/v1/sms/send", headers=BEARER, json={"to": "61400000031", "message": "hi"}, timeout=5)
    calls = receiver.wait_for(2)
    by_path = {c["path"]: c for c in calls}
    assert by_path["/in"]["query"] == {"secret": "s3"}
    make_conn("cloudware_default", "cloudware", country_code="61")
    hook = CloudwareHook()
    (message,), _ = hook.parse_webhook(by_path["/in"]["json"])
    assert (message.from_number, message.text) == ("+61400000001", "YES")
    _, (report,) = hook.parse_webhook(by_path["/st"]["json"])
    assert (report.to, report.status) == ("+61400000031", "sent")


def test_clickatell_status_changes_as_get_callbacks_with_basic_auth(
    sandbox: Any, receiver: Receiver, make_conn: Any
) -> None:
    from airflow_provider_sms.hooks.clickatell import ClickatellHook

    # +61400000911 fails through Cellcast; Clickatell delivers it unless told otherwise
    sandbox.store.settings.delivery.update(
        {"sent_after": 0.1, "final_after": 0.3, "outcomes": {"+61400000911": "failed"}}
    )
    host = receiver.url.replace("http://", "http://airflow:pass@")
    assert configure(sandbox, provider="clickatell", status=f"{host}/st", method="GET").status_code == 200
    requests.post(
        sandbox.url + "/messages",
        headers={"Authorization": "k"},
        json={"content": "hi", "to": ["61400000911"]},
        timeout=5,
    )
    calls = receiver.wait_for(3)
    assert [c["method"] for c in calls] == ["GET"] * 3
    assert all(c["auth"] == "Basic YWlyZmxvdzpwYXNz" for c in calls)
    make_conn("clickatell_default", "clickatell")
    statuses = [ClickatellHook().parse_webhook(c["query"])[1][0].status for c in calls]
    assert statuses == ["queued", "sent", "failed"]


def test_cellcast_posts_only_final_statuses(sandbox: Any, receiver: Receiver, make_conn: Any) -> None:
    from airflow_provider_sms.hooks.cellcast import CellcastHook

    sandbox.store.settings.delivery.update({"sent_after": 0.1, "final_after": 0.2})
    configure(sandbox, provider="cellcast", status=f"{receiver.url}/st")
    requests.post(
        sandbox.url + "/api/v1/gateway", headers=BEARER, json={"message": "hi", "contacts": ["0400000912"]}, timeout=5
    )
    (call,) = receiver.wait_for(1)
    sandbox.webhooks.wait_until_idle(timeout=60)  # the message is final: nothing more will be pushed
    assert len(receiver.calls) == 1
    make_conn("cellcast_default", "cellcast")
    _, (report,) = CellcastHook().parse_webhook(call["json"])
    assert (report.to, report.status) == ("+61400000912", "expired")


def test_a_failing_webhook_is_retried_until_it_answers_2xx(sandbox: Any) -> None:
    failing = Receiver(failures=2)
    try:
        configure(sandbox, provider="cloudware", inbound=f"{failing.url}/in?secret=abc")
        requests.post(
            sandbox.url + "/_sandbox/inbound",
            json={"provider": "cloudware", "from": "0400000001", "text": "YES"},
            timeout=5,
        )
        calls = failing.wait_for(3, timeout=30)
        assert len(calls) == 3 and calls[0]["json"] == calls[2]["json"]
        sandbox.webhooks.wait_until_idle(timeout=60)  # the third attempt's outcome is recorded
        shown = requests.get(sandbox.url + "/_sandbox/webhooks", timeout=5).json()
        assert [a["outcome"] for a in shown["attempts"]] == [500, 500, 200]
        assert "abc" not in json.dumps(shown)  # secrets in URLs are not shown back
    finally:
        failing.server.shutdown()


def test_only_what_happens_after_configuring_is_pushed(sandbox: Any, receiver: Receiver) -> None:
    requests.post(
        sandbox.url + "/_sandbox/inbound",
        json={"provider": "cloudware", "from": "0400000001", "text": "old"},
        timeout=5,
    )
    configure(sandbox, provider="cloudware", inbound=f"{receiver.url}/in")
    requests.post(
        sandbox.url + "/_sandbox/inbound",
        json={"provider": "cloudware", "from": "0400000001", "text": "new"},
        timeout=5,
    )
    receiver.wait_for(1)
    sandbox.webhooks.wait_until_idle(timeout=60)
    assert [c["json"]["message"] for c in receiver.calls] == ["new"]


@pytest.mark.parametrize(
    "body",
    [
        {"provider": "nope", "inbound": "http://127.0.0.1:1/x"},
        {"provider": "cloudware", "inbound": "ftp://127.0.0.1/x"},
        {"provider": "cloudware", "status": "http://127.0.0.1:1/x", "method": "GET"},  # GET is Clickatell's only
    ],
)
def test_bad_webhook_settings_are_refused(sandbox: Any, body: dict[str, Any]) -> None:
    assert configure(sandbox, **body).status_code == 400


def test_a_round_that_first_sees_a_message_already_final_still_reports_each_status() -> None:
    from airflow_provider_sms.sandbox.webhooks import _passed_through

    assert _passed_through(None, "failed") == ["queued", "sent", "failed"]
    assert _passed_through(None, "sent") == ["queued", "sent"]
    assert _passed_through(None, "scheduled") == ["scheduled"]
    assert _passed_through("scheduled", "delivered") == ["queued", "sent", "delivered"]
    assert _passed_through("sent", "expired") == ["expired"]
