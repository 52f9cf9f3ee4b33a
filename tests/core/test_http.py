"""The shared HTTP client over a real loopback socket: retries, timeouts, drops and error mapping."""

from __future__ import annotations

import pytest

from airflow_provider_sms.core.errors import (
    SmsAuthError,
    SmsDeliveryUnknownError,
    SmsError,
    SmsInsufficientCreditError,
    SmsProviderUnavailableError,
    SmsRateLimitedError,
    SmsRejectedError,
)
from airflow_provider_sms.core.http import SmsHttpClient, resolve_base_url
from tests.conftest import TOKEN
from tests.scripted_server import Answer, ScriptedServer


def client(server: ScriptedServer, **kwargs: object) -> SmsHttpClient:
    options: dict = {"max_retries": 3, "backoff_factor": 0, "read_timeout": 2.0}
    options.update(kwargs)
    return SmsHttpClient(
        provider="testprov",
        base_url=server.url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        secrets=[TOKEN],
        **options,
    )


def test_get_is_retried_after_503_and_counts_attempts(server: ScriptedServer) -> None:
    server.script("GET", "/x", Answer(503, {"error": "busy"}), Answer(200, {"ok": True}))
    reply = client(server).request("GET", "/x")
    assert reply.body == {"ok": True}
    assert reply.attempts == 2
    assert len(server.calls("GET", "/x")) == 2


@pytest.mark.parametrize("status", [503, 429])
def test_post_is_retried_on_503_and_429(server: ScriptedServer, status: int) -> None:
    server.script(
        "POST", "/send", Answer(status, {"error": "later"}, headers={"Retry-After": "0"}), Answer(200, {"ok": 1})
    )
    reply = client(server).request("POST", "/send", json_body={"a": 1})
    assert reply.body == {"ok": 1}
    assert [c.json() for c in server.calls("POST", "/send")] == [{"a": 1}, {"a": 1}]


@pytest.mark.parametrize("status", [500, 502, 504])
def test_post_5xx_other_than_503_is_never_resent(server: ScriptedServer, status: int) -> None:
    server.script("POST", "/send", Answer(status, {"message": "boom"}), Answer(200, {"ok": 1}))
    with pytest.raises(SmsDeliveryUnknownError, match="may have been sent") as info:
        client(server).request("POST", "/send", json_body={})
    assert info.value.status == status
    assert len(server.calls("POST", "/send")) == 1


def test_post_read_timeout_is_delivery_unknown_and_not_resent(server: ScriptedServer) -> None:
    server.script("POST", "/send", Answer(200, {"ok": 1}, delay=1.0))
    with pytest.raises(SmsDeliveryUnknownError, match=r"no answer within 0\.3s"):
        client(server, read_timeout=0.3).request("POST", "/send", json_body={})
    assert len(server.calls("POST", "/send")) == 1


def test_post_dropped_connection_is_delivery_unknown_and_not_resent(server: ScriptedServer) -> None:
    server.script("POST", "/send", Answer(drop=True))
    with pytest.raises(SmsDeliveryUnknownError, match="dropped before a complete answer"):
        client(server).request("POST", "/send", json_body={})
    assert len(server.calls("POST", "/send")) == 1


def test_get_dropped_connection_is_retried(server: ScriptedServer) -> None:
    server.script("GET", "/list", Answer(drop=True), Answer(200, {"data": []}))
    assert client(server).request("GET", "/list").body == {"data": []}


def test_get_5xx_exhausts_retries_then_unavailable(server: ScriptedServer) -> None:
    server.script("GET", "/list", *[Answer(500, {"message": "down"})] * 5)
    with pytest.raises(SmsProviderUnavailableError, match="HTTP 500"):
        client(server, max_retries=2).request("GET", "/list")
    assert len(server.calls("GET", "/list")) == 3


def test_connection_refused_is_unavailable_and_says_nothing_was_sent() -> None:
    cli = SmsHttpClient(provider="p", base_url="http://127.0.0.1:9", headers={}, max_retries=1, backoff_factor=0)
    with pytest.raises(SmsProviderUnavailableError, match="nothing was sent"):
        cli.request("POST", "/send", json_body={})


@pytest.mark.parametrize(
    ("status", "body", "error", "text"),
    [
        (401, {"code": 401, "message": "Token expired"}, SmsAuthError, "Token expired"),
        (403, {"message": "forbidden"}, SmsAuthError, "credentials"),
        (
            422,
            {"status": False, "message": "Your balance is too low for this request, please recharge."},
            SmsInsufficientCreditError,
            "balance is too low",
        ),
        (
            400,
            {"status": False, "message": "Your sender id is not registered.", "error": {"sender": "not_registered"}},
            SmsRejectedError,
            "not_registered",
        ),
        (429, {"error": "OVER_LIMIT"}, SmsRateLimitedError, "OVER_LIMIT"),
    ],
)
def test_error_answers_map_to_specific_errors(
    server: ScriptedServer, status: int, body: dict, error: type[SmsError], text: str
) -> None:
    server.script("POST", "/send", *[Answer(status, body, headers={"Retry-After": "0"})] * 5)
    with pytest.raises(error, match=text) as info:
        client(server).request("POST", "/send", json_body={})
    assert info.value.status == status
    assert "POST /send" in str(info.value)


def test_html_error_page_is_named_as_such(server: ScriptedServer) -> None:
    page = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    server.script("GET", "/list", *[Answer(502, page, headers={"Content-Type": "text/html"})] * 4)
    with pytest.raises(SmsProviderUnavailableError, match=r"HTML page.*502 Bad Gateway"):
        client(server).request("GET", "/list")


@pytest.mark.parametrize(
    ("body", "ctype", "text"),
    [
        ("", "application/json", "empty body"),
        ("<html>maintenance</html>", "text/html", "HTML page"),
        ("not json", "text/plain", "not JSON"),
    ],
)
def test_unreadable_2xx_after_post_is_delivery_unknown(
    server: ScriptedServer, body: str, ctype: str, text: str
) -> None:
    server.script("POST", "/send", Answer(200, body, headers={"Content-Type": ctype}))
    with pytest.raises(SmsDeliveryUnknownError, match=text):
        client(server).request("POST", "/send", json_body={})


def test_token_never_appears_in_errors_even_if_echoed(server: ScriptedServer) -> None:
    server.script("POST", "/send", Answer(400, {"message": f"bad header Bearer {TOKEN}"}))
    with pytest.raises(SmsRejectedError) as info:
        client(server).request("POST", "/send", json_body={})
    assert TOKEN not in str(info.value)
    assert "***" in str(info.value)
    assert server.calls("POST", "/send")[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_absolute_urls_must_stay_on_the_connection_host(server: ScriptedServer) -> None:
    elsewhere = ScriptedServer()  # another origin on loopback: a different port is a different host
    elsewhere.start()
    try:
        cli = client(server)
        assert cli.request("GET", server.url + "/v1/next?token=abc").body == {"status": "success", "data": {"id": "1"}}
        with pytest.raises(SmsError, match="token must not be sent elsewhere"):
            cli.request("GET", elsewhere.url + "/steal")
        assert elsewhere.requests == []
        assert [r.path for r in server.requests] == ["/v1/next"]
    finally:
        elsewhere.stop()


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (None, "https://api.example.com"),
        ("", "https://api.example.com"),
        ("api.other.com", "https://api.other.com"),
        ("https://api.other.com/", "https://api.other.com"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("http://localhost:8765/base/", "http://localhost:8765/base"),
        ("http://[::1]:8765", "http://[::1]:8765"),
    ],
)
def test_resolve_base_url(host: str | None, expected: str) -> None:
    assert resolve_base_url(host, "https://api.example.com") == expected


def test_plain_http_is_refused_for_non_loopback_hosts() -> None:
    with pytest.raises(SmsError, match="refusing plain http://"):
        resolve_base_url("http://api.example.com", "https://x")
    with pytest.raises(SmsError, match="refusing plain http://"):
        resolve_base_url("http://10.0.0.5:8080", "https://x")
