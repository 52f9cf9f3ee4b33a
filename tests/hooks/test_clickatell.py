"""ClickatellHook against requests-mock: JSON and XML bodies, the raw Authorization header, answers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_sms.core.errors import SmsAuthError, SmsDeliveryUnknownError, SmsValidationError
from airflow_provider_sms.hooks.clickatell import ClickatellHook
from tests.conftest import TOKEN
from tests.payloads import CLICKATELL_MESSAGES, clickatell_answer, in_days
from tests.wire import xml_root

URL = CLICKATELL_MESSAGES
WHEN = in_days(30, tz=timezone(timedelta(hours=2)), hour=14, minute=30, second=0, microsecond=0)
answer = clickatell_answer


XML_ANSWER = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<SendMessagesResponse><Messages>
<Message><ApiMessageId>174319bc027f45d989728093cc170107</ApiMessageId><Accepted>true</Accepted><To>380685555555</To></Message>
<Message><ApiMessageId></ApiMessageId><Accepted>false</Accepted><To>380685555556</To><ErrorCode>105</ErrorCode>
<Error>Invalid destination address</Error></Message>
</Messages></SendMessagesResponse>"""


@pytest.fixture
def hook(make_conn: Any) -> ClickatellHook:
    make_conn("clickatell_default", "clickatell")
    return ClickatellHook()


def test_json_request_uses_raw_key_and_documented_fields(hook: ClickatellHook, requests_mock: Any) -> None:
    requests_mock.post(URL, status_code=202, json=answer("380976543211", "61400000001"))
    when = in_days(30, tz=timezone(timedelta(hours=2)), hour=14, minute=30, second=0, microsecond=0)
    result = hook.send_message(
        ["+380976543211", "61400000001"],
        "string",
        sender="380671234567",
        send_at=when,
        validity_period=1,
        client_message_id="uuid",
        user_data_header="0605040B8423F0",
        charset="UTF-8",
    )
    request = requests_mock.request_history[0]
    assert request.headers["Authorization"] == TOKEN
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert request.json() == {
        "content": "string",
        "to": ["380976543211", "61400000001"],
        "from": "380671234567",
        "clientMessageId": "uuid",
        "scheduledDeliveryTime": when.strftime("%Y-%m-%dT12:30:00+0000"),
        "userDataHeader": "0605040B8423F0",
        "validityPeriod": 1,
        "charset": "UTF-8",
    }
    assert result.accepted == [
        {"to": "+380976543211", "message_id": "api-380976543211", "conn_id": "clickatell_default"},
        {"to": "+61400000001", "message_id": "api-61400000001", "conn_id": "clickatell_default"},
    ]


def test_per_recipient_rejection_is_reported(hook: ClickatellHook, requests_mock: Any) -> None:
    requests_mock.post(
        URL,
        status_code=202,
        json=answer("61400000001", rejected={"61400000002": (105, "Invalid destination address", "The number")}),
    )
    result = hook.send_sms(["+61400000001", "+61400000002"], "hi")
    assert result.accepted == [{"to": "+61400000001", "message_id": "api-61400000001", "conn_id": "clickatell_default"}]
    assert result.rejected == [
        {"to": "+61400000002", "code": "invalid_number", "reason": "The number", "provider_code": "105"}
    ]


def test_xml_request_and_answer(make_conn: Any, requests_mock: Any) -> None:
    make_conn("ck", "clickatell", request_format="xml", sender="380671234567")
    requests_mock.post(URL, status_code=202, text=XML_ANSWER, headers={"Content-Type": "application/xml"})
    result = ClickatellHook("ck").send_message(
        ["+380685555555", "+380685555556"],
        "a < b & c",
        binary=False,
        client_message_id="id",
        send_at=WHEN.isoformat(),
        validity_period=1,
        charset="UTF-8",
    )
    request = requests_mock.request_history[0]
    assert request.headers["Authorization"] == TOKEN
    assert request.headers["Content-Type"] == "application/xml"
    assert request.headers["Accept"] == "application/xml"
    assert request.body.startswith(b'<?xml version="1.0"')
    root = xml_root(request.body)
    assert root.tag == "SendMessageRequest"
    assert [(child.tag, child.text) for child in root] == [
        ("Content", "a < b & c"),
        ("To", "380685555555"),
        ("To", "380685555556"),
        ("From", "380671234567"),
        ("ClientMessageId", "id"),
        ("ScheduledDeliveryTime", WHEN.strftime("%Y-%m-%dT12:30:00+0000")),
        ("ValidityPeriod", "1"),
        ("Charset", "UTF-8"),
    ]
    assert result.accepted == [
        {"to": "+380685555555", "message_id": "174319bc027f45d989728093cc170107", "conn_id": "ck"}
    ]
    assert result.rejected == [
        {
            "to": "+380685555556",
            "code": "invalid_number",
            "reason": "Invalid destination address",
            "provider_code": "105",
        }
    ]


def test_binary_message_is_hex_and_sent_as_binary(hook: ClickatellHook, requests_mock: Any) -> None:
    requests_mock.post(URL, status_code=202, json=answer("61400000001"))
    hook.send_message("+61400000001", "48656C6C6F", binary=True, user_data_header="0605040B8423F0")
    assert requests_mock.request_history[0].json()["binary"] is True
    with pytest.raises(SmsValidationError, match="hex"):
        hook.send_message("+61400000001", "not hex", binary=True)


def test_recipients_are_chunked_at_200(hook: ClickatellHook, requests_mock: Any) -> None:
    requests_mock.post(URL, status_code=202, json={"messages": [{"to": "0", "accepted": True}]})
    numbers = [f"+614{i:08d}" for i in range(450)]
    result = hook.send_message(numbers, "hi")
    assert sorted(len(r.json()["to"]) for r in requests_mock.request_history) == [50, 200, 200]
    # every recipient went out exactly once; the empty answers leave them unknown, never resent
    assert sorted(n for r in requests_mock.request_history for n in r.json()["to"]) == sorted(
        n.lstrip("+") for n in numbers
    )
    assert {r["code"] for r in result.rejected} == {"delivery_unknown"}
    with pytest.raises(SmsValidationError):
        ClickatellHook(batch_size=201)


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"send_at": datetime(2031, 1, 1, 9)}, "no time zone"),
        ({"send_at": "2031-01-01T09:00:00"}, "no time zone"),
        ({"send_at": datetime(2001, 1, 1, tzinfo=timezone.utc)}, "in the past"),
        ({"validity_period": 0}, "whole number"),
        ({"request_format": "yaml"}, "json' or 'xml"),
        ({"sender": "Bad!Sender"}, "characters"),
    ],
)
def test_bad_options_send_nothing(hook: ClickatellHook, requests_mock: Any, kwargs: dict, why: str) -> None:
    with pytest.raises(SmsValidationError, match=why):
        hook.send_message("+61400000001", "hi", **kwargs)
    assert requests_mock.call_count == 0


def test_401_is_auth_error_without_the_key(hook: ClickatellHook, requests_mock: Any) -> None:
    requests_mock.post(
        URL,
        status_code=401,
        json={"messages": [], "errorCode": 1, "error": "Invalid or missing Auth token", "errorDescription": "x"},
    )
    with pytest.raises(SmsAuthError, match="Invalid or missing Auth token") as info:
        hook.send_sms("+61400000001", "hi")
    assert TOKEN not in str(info.value)


def test_202_without_messages_is_delivery_unknown(hook: ClickatellHook, requests_mock: Any) -> None:
    requests_mock.post(URL, status_code=202, json={"unexpected": True})
    with pytest.raises(SmsDeliveryUnknownError, match="may have been sent"):
        hook.send_sms("+61400000001", "hi")
    assert requests_mock.call_count == 1


def test_xml_with_a_doctype_is_refused(make_conn: Any, requests_mock: Any) -> None:
    make_conn("ck", "clickatell", request_format="xml")
    evil = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><SendMessagesResponse/>'
    requests_mock.post(URL, status_code=202, text=evil)
    with pytest.raises(SmsDeliveryUnknownError, match="could not be read"):
        ClickatellHook("ck").send_sms("+61400000001", "hi")


def test_test_connection_sends_no_recipient(hook: ClickatellHook, requests_mock: Any) -> None:
    requests_mock.post(URL, status_code=400, json={"error": "no recipients"})
    assert hook.test_connection()[0] is True
    assert requests_mock.request_history[0].json() == {"content": "", "to": []}
    requests_mock.post(URL, status_code=401, json={"error": "Invalid or missing Auth token"})
    ok, message = ClickatellHook().test_connection()
    assert not ok and TOKEN not in message


# --- clientMessageId under the send ledger ------------------------------------------------------------


@pytest.mark.parametrize("request_format", ["json", "xml"])
def test_under_a_send_ledger_each_request_carries_its_own_client_message_id_and_the_ledger_keeps_it(
    make_conn: Any, requests_mock: Any, request_format: str
) -> None:
    import uuid

    from airflow_provider_sms.core.delivery import send_once
    from airflow_provider_sms.state.ledger import MemoryStore, SendLedger

    make_conn("ck", "clickatell", request_format=request_format)

    def sent(request: Any) -> tuple[list[str], str | None]:
        if request_format == "xml":
            root = xml_root(request.body)
            return [n.text or "" for n in root.findall("To")], root.findtext("ClientMessageId")
        return request.json()["to"], request.json().get("clientMessageId")

    def reply(request: Any, context: Any) -> Any:
        context.status_code = 202
        return answer(*sent(request)[0])

    if request_format == "xml":
        requests_mock.post(URL, status_code=202, text=lambda request, context: xml_answer(sent(request)[0]))
    else:
        requests_mock.post(URL, json=reply)
    numbers = [f"+6140000000{i}" for i in range(5)]
    hook = ClickatellHook("ck", batch_size=2, max_workers=2)
    ledger = SendLedger(MemoryStore())
    result = send_once(ledger, numbers, "hi", lambda todo: hook.send_sms(todo, "hi"), provider="clickatell")
    assert len(result.accepted) == 5
    refs = {}
    for request in requests_mock.request_history:
        to, ref = sent(request)
        assert ref is not None and str(uuid.UUID(ref)) == ref  # a UUID, as the docs' example shows
        refs.update({"+" + n: ref for n in to})
    assert len(set(refs.values())) == 3  # one per request (2 + 2 + 1 recipients)
    view = SendLedger(ledger.store).view().of("hi")
    assert {n: view[n].ref for n in numbers} == refs  # each number with its request's reference


def xml_answer(to: list[str]) -> str:
    messages = "".join(
        f"<Message><ApiMessageId>api-{n}</ApiMessageId><Accepted>true</Accepted><To>{n}</To></Message>" for n in to
    )
    return f'<?xml version="1.0"?><SendMessagesResponse><Messages>{messages}</Messages></SendMessagesResponse>'


def test_without_a_ledger_no_client_message_id_is_made_up_and_a_given_one_is_kept(
    make_conn: Any, requests_mock: Any
) -> None:
    from airflow_provider_sms.core.delivery import send_once
    from airflow_provider_sms.state.ledger import MemoryStore, SendLedger

    make_conn("ck", "clickatell")
    requests_mock.post(URL, status_code=202, json=answer("61400000001"))
    hook = ClickatellHook("ck")
    hook.send_sms("+61400000001", "hi")  # a plain hook call: nothing to record it in
    assert "clientMessageId" not in requests_mock.request_history[-1].json()
    ledger = SendLedger(MemoryStore())
    send = lambda todo: hook.send_message(todo, "hi", client_message_id="mine")  # noqa: E731
    send_once(ledger, ["+61400000001"], "hi", send, provider="clickatell")
    assert requests_mock.request_history[-1].json()["clientMessageId"] == "mine"  # the user's, as given
    assert SendLedger(ledger.store).view().of("hi")["+61400000001"].ref == "mine"


def test_recipients_in_doubt_are_named_by_their_client_message_id_and_not_resent(
    make_conn: Any, requests_mock: Any, caplog: Any
) -> None:
    import logging

    from requests.exceptions import ReadTimeout

    from airflow_provider_sms.core.delivery import send_once
    from airflow_provider_sms.state.ledger import MemoryStore, SendLedger

    make_conn("ck", "clickatell")
    store = MemoryStore()
    # the first try's request went out and its answer never came (the connection dropped every attempt)
    requests_mock.post(URL, exc=ReadTimeout)
    hook = ClickatellHook("ck", max_retries=0)
    with pytest.raises(SmsDeliveryUnknownError):
        send_once(SendLedger(store), ["+61400000001"], "hi", lambda t: hook.send_sms(t, "hi"), provider="clickatell")
    ref = requests_mock.request_history[0].json()["clientMessageId"]
    requests_mock.reset_mock()
    with caplog.at_level(logging.WARNING, logger="airflow_provider_sms.core.delivery"):
        result = send_once(
            SendLedger(store, try_number=2),
            ["+61400000001"],
            "hi",
            lambda t: hook.send_sms(t, "hi"),
            provider="clickatell",
            confirm=lambda conn, numbers, message, since: hook.confirm_sent(numbers, message, since=since),
        )
    assert requests_mock.request_history == []  # nothing resent, nothing asked: Clickatell has no lookup
    assert result.in_doubt == ["+61400000001"]
    assert ref in caplog.text  # the reference Clickatell's status callbacks echo, to look them up by
