"""The sandbox as a stand-in a newcomer can trust: a page that never wipes a half-typed reply, MMS and
schedules shown for what they are, settings that echo what was set, and Clickatell's HTTP API as simple
clients (Home Assistant's and apprise's Clickatell notifiers) call it."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests

from tests.payloads import PNG

BEARER = {"Authorization": "Bearer sandbox-token"}


def test_the_page_refreshes_by_fetch_and_waits_while_someone_types(sandbox: Any) -> None:
    page = requests.get(sandbox.url + "/", timeout=5).text
    assert 'http-equiv="refresh"' not in page  # a meta refresh reloads the page and loses the typed text
    assert 'fetch("/_sandbox/conversations")' in page
    assert 'f === document.activeElement || f.value !== ""' in page  # no swap while a field is in use
    fragment = requests.get(sandbox.url + "/_sandbox/conversations", timeout=5)
    assert fragment.status_code == 200 and "<html" not in fragment.text


def test_mms_chat_and_scheduled_messages_show_what_they_are(sandbox: Any) -> None:
    files = {"media": ("promo.png", PNG, "image/png")}
    data = {"message": "This week only", "contacts": '["0400000001"]'}
    mms = requests.post(sandbox.url + "/api/v1/gatewaymms", headers=BEARER, data=data, files=files, timeout=5)
    message_id = mms.json()["data"]["queueResponse"][0]["MessageId"]
    requests.post(
        sandbox.url + "/api/v1/chat", headers=BEARER, json={"message": "hi", "number": ["0400000002"]}, timeout=5
    )
    requests.post(
        sandbox.url + "/api/v1/gateway",
        headers=BEARER,
        json={"message": "later", "contacts": ["0400000003"], "scheduleAt": "2099-01-01 09:00:00"},
        timeout=5,
    )
    html = requests.get(sandbox.url + "/_sandbox/conversations", timeout=5).text
    assert '<span class="kind">MMS</span>' in html and '<span class="kind">chat</span>' in html
    assert f'src="/_sandbox/media/{message_id}"' in html
    assert "due\n  2099-01-01 09:00 UTC" in html
    image = requests.get(f"{sandbox.url}/_sandbox/media/{message_id}", timeout=5)
    assert (image.status_code, image.headers["content-type"], image.content) == (200, "image/png", PNG)
    assert requests.get(f"{sandbox.url}/_sandbox/media/nope", timeout=5).status_code == 404


def test_every_recipient_can_be_answered_through_its_own_provider(sandbox: Any) -> None:
    requests.post(
        sandbox.url + "/messages",
        headers={"Authorization": "k"},
        json={"content": "hi", "to": ["61400000001"]},
        timeout=5,
    )

    def offered() -> list[tuple[str, bool, str]]:
        html = requests.get(sandbox.url + "/_sandbox/conversations", timeout=5).text
        options = re.findall(r'<option value="(\w+)"( selected)?>([^<]*)</option>', html)
        return [(value, bool(selected), label.strip()) for value, selected, label in options]

    unseen = "clickatell (no reply callback set: Airflow will not see it)"
    assert offered() == [
        ("cellcast", False, "cellcast"),
        ("clickatell", True, unseen),
        ("cloudware", False, "cloudware"),
    ]
    requests.post(
        sandbox.url + "/_sandbox/webhooks",
        json={"provider": "clickatell", "inbound": "http://127.0.0.1:9/x"},
        timeout=5,
    )
    assert ("clickatell", True, "clickatell") in offered()  # the callback passes the reply on


def test_settings_echo_everything_and_refuse_what_they_cannot_take(sandbox: Any) -> None:
    url = sandbox.url + "/_sandbox/settings"
    assert requests.get(url, timeout=5).json() == {
        "unsubscribed": [],
        "registered_senders": None,
        "balance": None,
        "tokens": None,
        "cellcast_rate_limit": 15,
    }
    echoed = requests.post(url, json={"tokens": [], "balance": 10}, timeout=5).json()
    assert (echoed["tokens"], echoed["balance"]) == ([], 10)  # [] refuses every token; null accepts any
    for bad in ({"tokens": "abc"}, {"balance": -1}, {"balance": True}, {"token": ["x"]}, {"unsubscribed": None}):
        answer = requests.post(url, json={**bad, "cellcast_rate_limit": 1}, timeout=5)
        assert answer.status_code == 400, bad
    assert requests.get(url, timeout=5).json()["cellcast_rate_limit"] == 15  # nothing changed by a refusal


def test_clickatell_http_api_as_simple_clients_call_it(sandbox: Any) -> None:
    url = sandbox.url + "/messages/http/send"
    # the request Home Assistant's and apprise's Clickatell notifiers make
    answer = requests.get(url, params={"apiKey": "key", "to": "61400000001,14155550123", "content": "Hi"}, timeout=5)
    assert answer.status_code == 202
    assert [(m["accepted"], m["to"]) for m in answer.json()["messages"]] == [
        (True, "61400000001"),
        (True, "14155550123"),
    ]
    form = requests.post(url, data={"apiKey": "key", "to": "61400000002", "content": "Hi"}, timeout=5)
    assert form.status_code == 202
    stored = {m["phone"]: m["endpoint"] for m in sandbox.store.all(provider="clickatell")}
    assert stored == {p: "/messages/http/send" for p in ("+61400000001", "+14155550123", "+61400000002")}
    sandbox.store.settings.tokens = {"the-key"}
    assert (
        requests.get(url, params={"apiKey": "wrong", "to": "61400000001", "content": "Hi"}, timeout=5).status_code
        == 401
    )


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        ("<Binary>true</Binary><UserDataHeader>0605040B8423F0</UserDataHeader>", 202),
        ("<Binary>maybe</Binary>", 400),
        ("<UserDataHeader>zz</UserDataHeader>", 400),
    ],
)
def test_clickatell_xml_binary_and_user_data_header(sandbox: Any, extra: str, status: int) -> None:
    content = "48656C6C6F" if "true" in extra else "Hello"
    xml = f"<SendMessageRequest><Content>{content}</Content><To>61400000001</To>{extra}</SendMessageRequest>"
    answer = requests.post(
        sandbox.url + "/messages",
        data=xml,
        timeout=5,
        headers={"Authorization": "k", "Content-Type": "application/xml"},
    )
    assert answer.status_code == status


def test_clickatell_answers_in_the_format_accept_asks_for(sandbox: Any) -> None:
    headers = {"Authorization": "k", "Content-Type": "application/json", "Accept": "application/xml"}
    answer = requests.post(
        sandbox.url + "/messages", json={"content": "hi", "to": ["61400000001"]}, headers=headers, timeout=5
    )
    assert answer.headers["content-type"].startswith("application/xml")
    assert "<Accepted>true</Accepted>" in answer.text


def test_the_page_shows_what_each_provider_reports(sandbox: Any) -> None:
    sandbox.store.settings.delivery.update({"sent_after": 0, "final_after": 0})
    requests.post(sandbox.url + "/v1/sms/send", headers=BEARER, json={"to": "61400000001", "message": "a"}, timeout=5)
    requests.post(
        sandbox.url + "/api/v1/gateway", headers=BEARER, json={"message": "b", "contacts": ["0400000002"]}, timeout=5
    )
    html = requests.get(sandbox.url + "/_sandbox/conversations", timeout=5).text
    statuses = dict(re.findall(r"via (\w+)\n.*?<span class=\"status \w+\">(\w+)</span>", html, re.DOTALL))
    assert statuses == {"cloudware": "sent", "cellcast": "delivered"}  # Cloudware reports sent, nothing after


def test_the_browser_finds_an_icon(sandbox: Any) -> None:
    icon = requests.get(sandbox.url + "/favicon.ico", timeout=5)
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
