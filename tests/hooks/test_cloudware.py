"""CloudwareHook against requests-mock: per-recipient sends, the queue, and paged inbound listing."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_sms.core.errors import (
    SmsError,
    SmsProviderUnavailableError,
    SmsRejectedError,
    SmsUnsupportedFeatureError,
)
from airflow_provider_sms.hooks.cloudware import CloudwareHook
from tests.conftest import TOKEN
from tests.payloads import CLOUDWARE, CLOUDWARE_OK, cloudware_item
from tests.scripted_server import Answer, ScriptedServer

BASE = CLOUDWARE
OK = CLOUDWARE_OK


@pytest.fixture
def hook(make_conn: Any) -> CloudwareHook:
    make_conn("cloudware_default", "cloudware", sender="Acme")
    return CloudwareHook()


@pytest.mark.parametrize(("method", "path"), [("send_sms", "/v1/sms/send"), ("queue_sms", "/v1/sms/queue")])
def test_one_request_per_recipient_with_documented_body(
    hook: CloudwareHook, requests_mock: Any, method: str, path: str
) -> None:
    requests_mock.post(f"{BASE}{path}", json=OK)
    result = getattr(hook, method)(["+2348012345678", "2348012345679", "+2348012345678"], "Your message here")
    bodies = sorted((r.json() for r in requests_mock.request_history), key=lambda b: b["to"])
    assert bodies == [
        {"to": "2348012345678", "message": "Your message here", "from": "Acme"},
        {"to": "2348012345679", "message": "Your message here", "from": "Acme"},
    ]
    for request in requests_mock.request_history:
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert request.headers["Content-Type"] == "application/json"
    assert result.accepted == [
        {"to": "+2348012345678", "message_id": "12345", "conn_id": "cloudware_default"},
        {"to": "+2348012345679", "message_id": "12345", "conn_id": "cloudware_default"},
    ]


def test_concurrency_is_bounded_by_max_workers_over_real_sockets(make_conn: Any, server: ScriptedServer) -> None:
    make_conn("cw", "cloudware", host=server.url)
    server.script_default("POST", "/v1/sms/send", Answer(200, OK, delay=0.02), 60)
    numbers = [f"+2348012{i:06d}" for i in range(60)]
    result = CloudwareHook("cw", max_workers=3).send_sms(numbers, "hi")
    assert server.peak_in_flight == 3
    assert [a["to"] for a in result.accepted] == numbers
    assert sorted(c.json()["to"] for c in server.calls("POST", "/v1/sms/send")) == [n[1:] for n in numbers]


def test_non_success_status_is_a_rejection(hook: CloudwareHook, requests_mock: Any) -> None:
    requests_mock.post(f"{BASE}/v1/sms/send", json={"status": "error", "message": "blocked number"})
    with pytest.raises(SmsRejectedError, match="blocked number") as info:
        hook.send_sms("+2348012345678", "hi")
    assert info.value.result is not None
    assert [(r["to"], r["code"]) for r in info.value.result.rejected] == [("+2348012345678", "rejected")]


def test_partial_outage_lists_who_was_not_sent(make_conn: Any, requests_mock: Any) -> None:
    make_conn("cw", "cloudware")

    def reply(request: Any, context: Any) -> dict:
        if request.json()["to"].endswith("9"):
            context.status_code = 503
            return {"message": "maintenance"}
        return OK

    requests_mock.post(f"{BASE}/v1/sms/send", json=reply)
    result = CloudwareHook("cw", max_workers=1).send_sms(["+2348012345678", "+2348012345679"], "hi")
    assert [a["to"] for a in result.accepted] == ["+2348012345678"]
    assert result.rejected[0]["to"] == "+2348012345679"
    assert result.rejected[0]["code"] == "provider_unavailable"


def item(kind: str, sender: str, text: str, created: str, mid: str = "") -> dict[str, str]:
    return cloudware_item(text, created, mid, sender=sender, kind=kind, to="2348000000000")


def test_iter_messages_follows_next_page_and_stops_at_since(hook: CloudwareHook, requests_mock: Any) -> None:
    requests_mock.get(
        f"{BASE}/v1/sms/messages",
        json={
            "query": "",
            "data": [
                item("message_received", "2348012345678", "YES", "2030-01-03T00:00:00Z", "m3"),
                item("message_sent", "2348000000000", "Reply YES", "2030-01-02T12:00:00Z"),
            ],
            "next_page": f"{BASE}/v1/sms/messages?token=P2",
        },
    )
    requests_mock.get(
        f"{BASE}/v1/sms/messages?token=P2",
        json={
            "data": [
                item("message_received", "2348012345679", "no", "2030-01-02T00:00:00Z"),
                item("message_received", "2348012345670", "old", "2029-12-01T00:00:00Z", "m0"),
            ],
            "next_page": f"{BASE}/v1/sms/messages?token=P3",
        },
    )
    messages = list(hook.iter_messages(since=datetime(2030, 1, 1, tzinfo=timezone.utc)))
    assert [m.text for m in messages] == ["YES", "no"]
    assert messages[0].from_number == "+2348012345678"
    assert messages[0].to_number == "+2348000000000"
    assert messages[1].message_id.startswith("derived-")
    assert [r.url for r in requests_mock.request_history] == [
        f"{BASE}/v1/sms/messages",
        f"{BASE}/v1/sms/messages?token=P2",
    ]
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in requests_mock.request_history)


def test_next_page_on_another_host_is_refused(hook: CloudwareHook, requests_mock: Any) -> None:
    recent = item("message_received", "2348012345678", "hi", "2030-01-01T00:00:00Z", "m1")
    requests_mock.get(f"{BASE}/v1/sms/messages", json={"data": [recent], "next_page": "https://evil.example.com/x"})
    with pytest.raises(SmsError, match="must not be sent elsewhere"):
        list(hook.iter_messages())
    assert requests_mock.call_count == 1


def test_test_connection(hook: CloudwareHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/v1/sms/messages", json={"data": []})
    assert hook.test_connection()[0] is True
    requests_mock.get(f"{BASE}/v1/sms/messages", status_code=503, text="<html>down</html>")
    ok, message = CloudwareHook(max_retries=0).test_connection()
    assert not ok and "HTTP 503" in message


def test_outage_on_every_recipient_raises_with_the_result(hook: CloudwareHook, requests_mock: Any) -> None:
    requests_mock.post(f"{BASE}/v1/sms/send", status_code=503, json={"message": "down"})
    with pytest.raises(SmsProviderUnavailableError) as info:
        hook.send_sms(["+2348012345678", "+2348012345679"], "hi")
    assert info.value.result is not None
    assert sorted(r["to"] for r in info.value.result.rejected) == ["+2348012345678", "+2348012345679"]


def test_send_at_is_refused_naming_the_alternatives(hook: CloudwareHook, requests_mock: Any) -> None:
    with pytest.raises(SmsUnsupportedFeatureError, match="Clickatell or Cellcast") as info:
        hook.send_sms("+2348012345678", "hi", send_at="2031-01-01T09:00:00+00:00")
    assert "cannot schedule" in str(info.value)
    assert requests_mock.call_count == 0


class TestConfirmSent:
    """Settling recipients an earlier try left in doubt: the ``message_sent`` records of the listing."""

    SINCE = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)

    @staticmethod
    def sent(to: str, text: str, at: str, message_id: str) -> dict[str, Any]:
        return {
            "type": "message_sent",
            "from": "Acme",
            "to": to,
            "message": text,
            "message_id": message_id,
            "created_at": at,
            "sent_at": at,
        }

    def test_a_listed_send_of_this_text_is_found_and_a_complete_listing_confirms_the_rest(
        self, hook: CloudwareHook, requests_mock: Any
    ) -> None:
        requests_mock.get(
            f"{BASE}/v1/sms/messages",
            json={
                "data": [
                    self.sent("2348012345678", "hello", "2030-01-01T12:00:05Z", "m1"),
                    self.sent("2348012345679", "another text", "2030-01-01T12:00:04Z", "m2"),  # not this message
                    self.sent("2348012345680", "hello", "2030-01-01T11:00:00Z", "m0"),  # older than the claim
                ],
                "next_page": None,
            },
        )
        check = hook.confirm_sent(["+2348012345678", "+2348012345679", "+2348012345680"], "hello", since=self.SINCE)
        assert check is not None
        assert check.found == {"+2348012345678": "m1"}
        assert check.absent == {"+2348012345679", "+2348012345680"}
        (request,) = requests_mock.request_history
        assert (request.method, request.path, request.headers["Authorization"]) == (
            "GET",
            "/v1/sms/messages",
            f"Bearer {TOKEN}",
        )

    def test_a_listing_cut_short_confirms_nothing_absent(self, hook: CloudwareHook, requests_mock: Any) -> None:
        # a server whose every page is newer than the claim and points to another page: the page cap stops it
        pages = [
            {
                "json": {
                    "data": [self.sent("2348000000000", "x", "2030-01-01T13:00:00Z", f"p{i}")],
                    "next_page": f"{BASE}/v1/sms/messages?token=p{i + 1}",
                }
            }
            for i in range(30)
        ]
        requests_mock.get(f"{BASE}/v1/sms/messages", pages)
        check = hook.confirm_sent(["+2348012345678"], "hello", since=self.SINCE)
        assert check is not None and check.found == {} and check.absent == set()
