"""A hostile provider and a careless user, over a real loopback socket: the result must stay true.

Each test names the behaviour it proves; the scripted server answers what a broken or malicious
provider could, and records every request, so "one POST only" and "nothing sent" are checked on the wire.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_sms._compat import AIRFLOW_V_3
from airflow_provider_sms.core.errors import (
    SmsAuthError,
    SmsError,
    SmsValidationError,
)
from airflow_provider_sms.hooks.cellcast import CellcastHook
from airflow_provider_sms.hooks.clickatell import ClickatellHook
from airflow_provider_sms.hooks.cloudware import CloudwareHook
from tests.conftest import TOKEN
from tests.payloads import cloudware_item
from tests.scripted_server import Answer, ScriptedServer

NG = [f"+234801234{i:04d}" for i in range(40)]


def hook(kind: str, make_conn: Any, server: ScriptedServer, **options: Any) -> Any:
    cls = {"cellcast": CellcastHook, "cloudware": CloudwareHook, "clickatell": ClickatellHook}[kind]
    make_conn(f"{kind}_hostile", kind, host=server.url, country_code="61")
    return cls(f"{kind}_hostile", backoff_factor=0, **options)


def outcome(send: Any) -> Any:
    """The result of a send, whether it returned or raised with the result attached."""
    try:
        return send()
    except SmsError as err:
        failed = err
    assert failed.result is not None, f"{type(failed).__name__} without a result: {failed}"
    return failed.result


# --- 1. 2xx answers that do not confirm acceptance ---------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code", "reason"),
    [
        ({"status": "error", "message": "Invalid sender"}, "rejected", "Invalid sender"),
        ({"error": "Sender blocked"}, "rejected", "Sender blocked"),
        ({"status": False, "message": "Your balance is too low"}, "insufficient_credit", "balance"),
        ({}, "delivery_unknown", "may have been sent"),
        ([], "delivery_unknown", "may have been sent"),
        (None, "delivery_unknown", "may have been sent"),
    ],
)
def test_cellcast_2xx_without_status_true_is_never_acceptance(
    make_conn: Any, server: ScriptedServer, body: Any, code: str, reason: str
) -> None:
    server.script("POST", "/api/v1/gateway", Answer(200, "null" if body is None else body))
    result = outcome(lambda: hook("cellcast", make_conn, server).send_sms(["0400000001", "0400000002"], "hi"))
    assert result.accepted == []
    assert {r["code"] for r in result.rejected} == {code}
    assert reason in result.rejected[0]["reason"]
    assert len(server.calls("POST", "/api/v1/gateway")) == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"error": "insufficient balance"}, "insufficient_credit"),
        ({"status": "failed", "message": "Number blocked"}, "rejected"),
        ({"status": "error", "message": "Invalid token"}, "auth_failed"),
        ({}, "delivery_unknown"),
        ([], "delivery_unknown"),
        (None, "delivery_unknown"),
        ({"status": True}, "delivery_unknown"),  # neither the documented success nor an error
    ],
)
def test_cloudware_2xx_without_status_success_is_never_acceptance(
    make_conn: Any, server: ScriptedServer, body: Any, code: str
) -> None:
    server.script("POST", "/v1/sms/send", Answer(200, "null" if body is None else body))
    result = outcome(lambda: hook("cloudware", make_conn, server).send_sms("+2348012345678", "hi"))
    assert result.accepted == []
    assert [r["code"] for r in result.rejected] == [code]
    assert len(server.calls("POST", "/v1/sms/send")) == 1


def test_clickatell_counts_only_entries_that_say_accepted(make_conn: Any, server: ScriptedServer) -> None:
    entries = [
        {"to": "61400000001", "accepted": True, "apiMessageId": "a1"},
        {"to": "61400000002", "accepted": "true", "apiMessageId": "a2"},  # a string is not true
        {"to": "61400000003", "accepted": True, "apiMessageId": ""},  # no id: not confirmed
        {"to": "61499999999", "accepted": True, "apiMessageId": "zz"},  # never sent: ignored
    ]
    server.script("POST", "/messages", Answer(202, {"messages": entries}))
    numbers = ["+61400000001", "+61400000002", "+61400000003", "+61400000004"]
    result = hook("clickatell", make_conn, server).send_sms(numbers, "hi")
    assert result.accepted == [{"to": "+61400000001", "message_id": "a1", "conn_id": "clickatell_hostile"}]
    assert {r["to"]: r["code"] for r in result.rejected} == {
        "+61400000002": "rejected",
        "+61400000003": "rejected",
        "+61400000004": "delivery_unknown",
    }


# --- 2. local failures are not "may have been sent" --------------------------------------------------


@pytest.mark.parametrize("retry_after", ["1.5", "-5", "soon-ish"])
def test_429_with_an_odd_retry_after_is_rate_limited_not_unknown(
    make_conn: Any, server: ScriptedServer, retry_after: str
) -> None:
    server.script_default("POST", "/v1/sms/send", Answer(429, {"error": "OVER_LIMIT"}, {"Retry-After": retry_after}), 9)
    result = outcome(lambda: hook("cloudware", make_conn, server, max_retries=1).send_sms("+2348012345678", "hi"))
    assert [r["code"] for r in result.rejected] == ["rate_limited"]
    assert result.retry_safe
    assert result.requests == len(server.calls("POST", "/v1/sms/send")) == 2


@pytest.mark.parametrize(
    ("conn", "error", "text"),
    [
        ({"password": TOKEN + "\n"}, SmsAuthError, "line break"),
        ({"password": TOKEN + "€"}, SmsAuthError, "cannot carry"),
        ({"host": "javascript:alert(1)"}, SmsValidationError, "not an http"),
        ({"host": "https://user:pw@api.example.com"}, SmsValidationError, "credentials"),
        ({"timeout": "0"}, SmsValidationError, "timeout"),
        ({"timeout": "-1"}, SmsValidationError, "timeout"),
        ({"timeout": "nan"}, SmsValidationError, "timeout"),
        ({"timeout": "inf"}, SmsValidationError, "timeout"),
    ],
)
def test_unusable_connections_fail_before_any_request(
    make_conn: Any, server: ScriptedServer, conn: dict, error: type, text: str
) -> None:
    options = {"host": server.url, **conn}
    password = options.pop("password", TOKEN)
    make_conn("careless", "cloudware", password=password, **options)
    with pytest.raises(error, match=text) as info:
        CloudwareHook("careless").send_sms("+2348012345678", "hi")
    assert TOKEN not in str(info.value)
    assert server.requests == []


def test_a_host_without_scheme_says_so_and_shows_the_url_tried(make_conn: Any, server: ScriptedServer) -> None:
    host = server.url.removeprefix("http://")
    make_conn("noscheme", "cloudware", host=host)
    result = outcome(lambda: CloudwareHook("noscheme", max_retries=0).send_sms("+2348012345678", "hi"))
    (entry,) = result.rejected
    assert entry["code"] == "provider_unavailable"
    assert f"has no scheme, so https://{host} was tried" in entry["reason"]
    assert f"write http://{host}" in entry["reason"]
    assert "nothing was sent" in entry["reason"]


# --- 3. a rate-limit storm stops; the send has a deadline ---------------------------------------------


def test_a_rate_limit_storm_trips_the_breaker_instead_of_hammering(make_conn: Any, server: ScriptedServer) -> None:
    server.script_default("POST", "/v1/sms/send", Answer(429, {"error": "OVER_LIMIT"}, {"Retry-After": "0"}), 500)
    cloudware = hook("cloudware", make_conn, server, max_workers=4, breaker_threshold=5)
    result = outcome(lambda: cloudware.send_sms(NG[:32], "hi"))
    posts = len(server.calls("POST", "/v1/sms/send"))
    assert posts <= 5 + 4  # the threshold, plus what was already in flight when it opened
    assert result.accepted == []
    assert {r["code"] for r in result.rejected} == {"rate_limited"}
    assert len(result.rejected) == 32
    assert result.retry_safe and len(result.fail_over_numbers()) == 32
    assert result.requests == posts


def test_a_huge_retry_after_is_not_waited_for(make_conn: Any, server: ScriptedServer) -> None:
    server.script_default("POST", "/v1/sms/send", Answer(429, {"error": "OVER_LIMIT"}, {"Retry-After": "100000"}), 5)
    started = time.monotonic()
    result = outcome(lambda: hook("cloudware", make_conn, server).send_sms("+2348012345678", "hi"))
    assert time.monotonic() - started < 5
    assert [r["code"] for r in result.rejected] == ["rate_limited"]
    assert "100000" in result.rejected[0]["reason"]
    assert len(server.calls("POST", "/v1/sms/send")) == 1


def test_the_send_deadline_stops_a_slow_send(make_conn: Any, server: ScriptedServer) -> None:
    server.script_default(
        "POST", "/v1/sms/send", Answer(200, {"status": "success", "data": {"id": "1"}}, delay=0.3), 50
    )
    cloudware = hook("cloudware", make_conn, server, max_workers=1, send_timeout=1.0)
    started = time.monotonic()
    result = cloudware.send_sms(NG[:10], "hi")
    assert time.monotonic() - started < 3
    sent = len(server.calls("POST", "/v1/sms/send"))
    assert len(result.accepted) == sent < 10
    assert {r["code"] for r in result.rejected} == {"provider_unavailable"}
    assert all("send_timeout" in r["reason"] for r in result.rejected)


# --- 4. provider text is scrubbed ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "path", "answer", "to"),
    [
        ("cellcast", "/api/v1/gateway", {"status": False, "message": f"bad token {TOKEN}"}, "0400000001"),
        ("cloudware", "/v1/sms/send", {"status": "error", "message": f"token {TOKEN} refused"}, "+2348012345678"),
        (
            "clickatell",
            "/messages",
            {"messages": [{"to": "61400000001", "accepted": False, "errorDescription": f"key {TOKEN}"}]},
            "+61400000001",
        ),
    ],
)
def test_a_token_echoed_in_a_2xx_error_goes_nowhere(
    make_conn: Any,
    server: ScriptedServer,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    kind: str,
    path: str,
    answer: dict,
    to: str,
) -> None:
    server.script("POST", path, Answer(200, answer))
    with caplog.at_level(logging.DEBUG):
        try:
            result = hook(kind, make_conn, server).send_sms(to, "hi")
            error_text = ""
        except SmsError as err:
            result, error_text = err.result, str(err)
    assert result is not None and result.rejected
    assert "***" in result.rejected[0]["reason"]
    assert TOKEN not in str(result.to_dict()) + error_text + caplog.text + capsys.readouterr().out


# --- 6. requests count every attempt ------------------------------------------------------------------


def test_requests_count_retries_and_the_fallback(make_conn: Any, server: ScriptedServer, monkeypatch: Any) -> None:
    from airflow_provider_sms.core.delivery import send_with_failover

    server.script("POST", "/v1/sms/send", *[Answer(503, {"message": "busy"}, {"Retry-After": "0"})] * 4)
    server.script("POST", "/v1/sms/send", Answer(200, {"status": "success", "data": {"id": "fb"}}))
    make_conn("primary", "cloudware", host=server.url)
    make_conn("fallback", "cloudware", host=server.url)
    result = send_with_failover(
        [lambda: CloudwareHook("primary", backoff_factor=0), lambda: CloudwareHook("fallback")],
        "+2348012345678",
        "hi",
    )
    assert result.accepted == [
        {"to": "+2348012345678", "message_id": "fb", "conn_id": "fallback", "provider": "cloudware"}
    ]
    assert result.requests == len(server.calls("POST", "/v1/sms/send")) == 5


# --- 7-9. inbound polling: bad timestamps, future timestamps, endless pages ----------------------------


def listing(*items: dict, next_page: str | None = None) -> dict:
    return {"data": list(items), "next_page": next_page}


def test_unreadable_timestamps_are_skipped_and_the_replies_around_them_found(
    make_conn: Any, server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(timezone.utc)
    good_new, good_old = cloudware_item("YES", now, "new"), cloudware_item("yes too", now - timedelta(seconds=5), "old")
    garbage = dict(cloudware_item("x", now, "g"), created_at="not a time", sent_at="not a time")
    missing = {k: v for k, v in cloudware_item("y", now, "m").items() if k not in ("created_at", "sent_at")}
    server.script("GET", "/v1/sms/messages", Answer(200, listing(good_new, garbage, missing, good_old)))
    with caplog.at_level(logging.WARNING):
        found = list(hook("cloudware", make_conn, server).iter_messages(since=now - timedelta(minutes=1)))
    assert [m.message_id for m in found] == ["new", "old"]
    assert "skipped 2 listing item(s)" in caplog.text


def test_a_message_stamped_2099_does_not_poison_the_cursor(make_conn: Any, server: ScriptedServer) -> None:
    from airflow_provider_sms.core.inbound import advance, build_filter, poll_replies

    now = datetime.now(timezone.utc)
    future = cloudware_item("hello", "2099-01-01T00:00:00Z", "f", sender="61400000009")
    reply = cloudware_item("YES", now + timedelta(seconds=2), "r")
    server.script("GET", "/v1/sms/messages", Answer(200, listing(future)), Answer(200, listing(future, reply)))
    cloudware = hook("cloudware", make_conn, server)
    flt = build_filter(from_numbers="+61400000001", match=["yes"], since=now - timedelta(minutes=1))
    first = poll_replies(cloudware, flt)
    assert first.match is None
    flt = advance(flt, first)
    assert flt.since is not None and flt.since < now
    second = poll_replies(cloudware, flt)
    assert second.match is not None and second.match.message_id == "r"


def test_endless_next_pages_on_the_same_host_are_bounded(make_conn: Any, server: ScriptedServer) -> None:
    now = datetime.now(timezone.utc)
    pages = [
        Answer(200, listing(cloudware_item(f"m{i}", now, f"id{i}"), next_page=f"{server.url}/v1/sms/messages?p={i}"))
        for i in range(200)
    ]
    server.script("GET", "/v1/sms/messages", *pages)
    found = list(hook("cloudware", make_conn, server).iter_messages(since=now - timedelta(hours=1)))
    assert len(server.calls("GET", "/v1/sms/messages")) == len(found) == 20


def test_cellcast_pages_that_alternate_do_not_loop(make_conn: Any, server: ScriptedServer) -> None:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    page_a = {"data": {"items": [{"from": "400000001", "body": "a", "received_at": now, "message_id": "A"}]}}
    page_b = {"data": {"items": [{"from": "400000002", "body": "b", "received_at": now, "message_id": "B"}]}}
    server.script("GET", "/api/v1/apiClient/getResponses", *[Answer(200, page) for page in [page_a, page_b] * 50])
    found = list(hook("cellcast", make_conn, server).iter_messages(since="2020-01-01T00:00:00Z"))
    assert [m.message_id for m in found] == ["A", "B"]
    assert len(server.calls("GET", "/api/v1/apiClient/getResponses")) == 3


def test_the_trigger_deadline_holds_while_a_poll_is_stuck(make_conn: Any, server: ScriptedServer) -> None:
    import asyncio

    from airflow_provider_sms.triggers.inbound import InboundSmsTrigger

    now = datetime.now(timezone.utc)
    slow_pages = [
        Answer(
            200, listing(cloudware_item("x", now, f"id{i}"), next_page=f"{server.url}/v1/sms/messages?p={i}"), delay=0.4
        )
        for i in range(100)
    ]
    server.script("GET", "/v1/sms/messages", *slow_pages)
    make_conn("stuck", "cloudware", host=server.url)
    deadline = (now + timedelta(seconds=1)).isoformat()
    trigger = InboundSmsTrigger("stuck", match=["never"], poll_interval=1, timeout_at=deadline)

    async def first_event() -> dict:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("no event")

    started = time.monotonic()
    payload = asyncio.run(first_event())
    assert payload["status"] == "timeout"
    assert time.monotonic() - started < 3.5


# --- 10. the event trigger fires once per message ------------------------------------------------------


@pytest.mark.skipif(not AIRFLOW_V_3, reason="AssetWatcher event triggers need Airflow 3")
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_the_event_trigger_fires_once_per_message(make_conn: Any, server: ScriptedServer) -> None:
    import asyncio

    from airflow_provider_sms.triggers.inbound import InboundSmsEventTrigger

    at = datetime.now(timezone.utc) + timedelta(seconds=3)
    twice = cloudware_item("YES", at, "dup")
    idless_a = cloudware_item("yes please", at.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "", sender="61400000002")
    idless_b = dict(idless_a, created_at=at.strftime("%Y-%m-%d %H:%M:%S"), sent_at=at.strftime("%Y-%m-%d %H:%M:%S"))
    last = cloudware_item("YES!", at + timedelta(seconds=1), "last")
    server.script(
        "GET",
        "/v1/sms/messages",
        Answer(200, listing()),
        Answer(200, listing(twice, twice, idless_a)),  # the same id twice on one page
        Answer(200, listing(twice, idless_b)),  # again on the next poll, the id-less one formatted differently
        Answer(200, listing(last, twice, idless_b)),
    )
    make_conn("events", "cloudware", host=server.url)
    trigger = InboundSmsEventTrigger("events", match=["yes"], poll_interval=1)

    async def three() -> list[str]:
        ids = []
        async for event in trigger.run():
            ids.append(event.payload["message"]["message_id"])
            if len(ids) == 3:
                return ids
        return ids

    ids = asyncio.run(three())
    assert ids[2] == "last"
    assert "dup" in ids[:2] and any(i.startswith("derived-") for i in ids[:2])


def test_a_burst_in_one_second_is_not_read_again_on_every_poll(make_conn: Any, sandbox: Any) -> None:
    from airflow_provider_sms.core.inbound import advance, build_filter, poll_replies

    make_conn("burst", "cloudware", host=sandbox.url, country_code="61")
    second = datetime.now(timezone.utc).replace(microsecond=0)
    for i in range(300):  # six pages of messages, all stamped within the same second
        stamp = (second + timedelta(microseconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        sandbox.store.add_message(
            direction="in", provider="cloudware", phone="+61400000002", text="hi", ts=stamp, status="received"
        )
    cloudware = CloudwareHook("burst")
    flt = build_filter(from_numbers="+61400000001", match=["yes"], since=second - timedelta(minutes=1))
    first = poll_replies(cloudware, flt)
    assert sandbox.faults.stats()["requests"]["GET /v1/sms/messages"] == 6
    flt = advance(flt, first)
    poll_replies(cloudware, flt)
    assert sandbox.faults.stats()["requests"]["GET /v1/sms/messages"] == 7  # one page: nothing new there
