"""CellcastHook against requests-mock: the exact requests and the parsing of each documented answer."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sms.core.errors import (
    SmsAuthError,
    SmsInsufficientCreditError,
    SmsRejectedError,
    SmsValidationError,
)
from airflow_provider_sms.hooks.cellcast import CellcastHook, format_schedule
from tests.conftest import TOKEN
from tests.payloads import CELLCAST, PNG, cellcast_envelope, cellcast_queued, cellcast_responses, in_days
from tests.wire import multipart_fields

BASE = CELLCAST
envelope = cellcast_envelope
queued = cellcast_queued


@pytest.fixture
def hook(make_conn: Any) -> CellcastHook:
    make_conn("cellcast_default", "cellcast", sender="MyCompany")
    return CellcastHook()


class TestSendSms:
    def test_request_is_json_with_bearer_token_and_documented_fields(self, hook: CellcastHook, requests_mock: Any):
        requests_mock.post(f"{BASE}/api/v1/gateway", json=queued("400000001", "400000002"))
        when = in_days(30, hour=14, minute=58, second=0, microsecond=981000)
        result = hook.send_sms(["0400000001", "+61400000002"], "Line one\nLine two", send_at=when)

        request = requests_mock.request_history[0]
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["Accept"] == "application/json"
        assert request.json() == {
            "message": "Line one\r\nLine two",
            "contacts": ["+61400000001", "+61400000002"],
            "sender": "MyCompany",
            "scheduleAt": when.strftime("%Y-%m-%dT14:58:00.981Z"),
        }
        assert result.accepted == [
            {"to": "+61400000001", "message_id": "id-400000001", "conn_id": "cellcast_default"},
            {"to": "+61400000002", "message_id": "id-400000002", "conn_id": "cellcast_default"},
        ]
        assert result.rejected == [] and result.requests == 1

    def test_invalid_and_unsubscribed_contacts_are_parsed(self, hook: CellcastHook, requests_mock: Any):
        answer = queued("400000002", invalid=("61400000009",), unsub=("400000001",))
        requests_mock.post(f"{BASE}/api/v1/gateway", json=answer)
        result = hook.send_sms(["+61400000001", "+61400000002", "+61400000009"], "hi", sender="Other")
        assert requests_mock.request_history[0].json()["sender"] == "Other"
        assert result.accepted == [{"to": "+61400000002", "message_id": "id-400000002", "conn_id": "cellcast_default"}]
        assert result.rejected == [
            {
                "to": "+61400000009",
                "code": "invalid_number",
                "reason": "Number is not valid",
                "provider_code": "number_not_valid",
            }
        ]
        assert result.unsubscribed == ["+61400000001"]

    def test_invalid_duplicate_and_foreign_numbers_are_never_sent(self, hook: CellcastHook, requests_mock: Any):
        requests_mock.post(f"{BASE}/api/v1/gateway", json=queued("400000001"))
        result = hook.send_sms("0400000001, +61400000001, 61400000001, garbage, +2348012345678", "hi")
        assert requests_mock.request_history[0].json()["contacts"] == ["+61400000001"]
        assert {r["to"]: r["code"] for r in result.rejected} == {
            "garbage": "invalid_number",
            "+2348012345678": "unsupported_destination",
        }

    def test_contacts_are_chunked_at_1000_per_call(self, hook: CellcastHook, requests_mock: Any):
        requests_mock.post(f"{BASE}/api/v1/gateway", json=envelope(data={}))
        numbers = [f"+614{i:08d}" for i in range(2500)]
        result = hook.send_sms(numbers, "hi")
        sizes = [len(r.json()["contacts"]) for r in requests_mock.request_history]
        assert sizes == [1000, 1000, 500]
        sent = [n for r in requests_mock.request_history for n in r.json()["contacts"]]
        assert sorted(sent) == sorted(numbers)
        assert len(result.accepted) == 2500 and result.requests == 3

    def test_batch_size_is_configurable_but_not_above_the_limit(self, make_conn: Any, requests_mock: Any):
        make_conn("cc", "cellcast")
        requests_mock.post(f"{BASE}/api/v1/gateway", json=envelope(data={}))
        CellcastHook("cc", batch_size=2).send_sms(["0400000001", "0400000002", "0400000003"], "hi")
        assert [len(r.json()["contacts"]) for r in requests_mock.request_history] == [2, 1]
        with pytest.raises(SmsValidationError, match=r"1\.\.1000"):
            CellcastHook("cc", batch_size=1001)

    def test_schedule_accepts_timedelta_and_refuses_naive_or_past(self, hook: CellcastHook, requests_mock: Any):
        requests_mock.post(f"{BASE}/api/v1/gateway", json=queued("400000001"))
        hook.send_sms("0400000001", "hi", send_at=timedelta(hours=1))
        sent = requests_mock.request_history[0].json()["scheduleAt"]
        assert sent.endswith("Z") and datetime.fromisoformat(sent[:-1] + "+00:00") > datetime.now(timezone.utc)
        with pytest.raises(SmsValidationError, match="no time zone"):
            hook.send_sms("0400000001", "hi", send_at=datetime(2031, 1, 1, 9))
        with pytest.raises(SmsValidationError, match="in the past"):
            hook.send_sms("0400000001", "hi", send_at="2020-01-01T00:00:00Z")
        assert len(requests_mock.request_history) == 1

    def test_only_country_code_61_is_allowed(self, hook: CellcastHook, requests_mock: Any):
        requests_mock.post(f"{BASE}/api/v1/gateway", json=queued("400000001"))
        hook.send_sms("0400000001", "hi", country_code=61)
        assert requests_mock.request_history[0].json()["countryCode"] == "61"
        with pytest.raises(SmsValidationError, match="61 only"):
            hook.send_sms("0400000001", "hi", country_code="64")

    @pytest.mark.parametrize(
        ("text", "sender", "to", "why"),
        [
            ("", None, "0400000001", "empty"),
            ("a" * 1600, None, "0400000001", "SMS parts"),
            ("hi", "Bad_Sender!", "0400000001", "characters"),
            ("hi", "WayTooLongSender", "0400000001", "at most 11"),
            ("hi", None, "nope, 123", "no valid recipient"),
        ],
    )
    def test_bad_input_sends_nothing(self, hook: CellcastHook, requests_mock: Any, text, sender, to, why):
        with pytest.raises(SmsValidationError, match=why):
            hook.send_sms(to, text, sender=sender)
        assert requests_mock.call_count == 0


class TestErrors:
    def test_401_token_expired(self, hook: CellcastHook, requests_mock: Any):
        requests_mock.post(
            f"{BASE}/api/v1/gateway",
            status_code=401,
            json={"code": 401, "message": "Token expired", "stack": "APIError: Token expired ...."},
        )
        with pytest.raises(SmsAuthError, match="Token expired") as info:
            hook.send_sms("0400000001", "hi")
        assert TOKEN not in str(info.value)
        assert info.value.result is not None
        assert info.value.result.rejected[0]["code"] == "auth_failed"

    def test_422_low_balance(self, hook: CellcastHook, requests_mock: Any):
        body = envelope(False, "Your balance is too low for this request, please recharge.")
        body["error"] = {"errorMessage": "Your balance is too low for this request, please recharge."}
        requests_mock.post(f"{BASE}/api/v1/gatewaymms", status_code=422, json=body)
        with pytest.raises(SmsInsufficientCreditError, match="balance is too low"):
            hook.send_mms("0400000001", "hi", media=PNG)

    def test_400_sender_not_registered(self, hook: CellcastHook, requests_mock: Any):
        body = envelope(False, "Your sender id is not registered.")
        body["error"] = {"sender": "not_registered"}
        requests_mock.post(f"{BASE}/api/v1/chat", status_code=400, json=body)
        with pytest.raises(SmsRejectedError, match="not registered"):
            hook.send_chat("0400000001", "hi")

    def test_400_bad_contacts(self, hook: CellcastHook, requests_mock: Any):
        body = {
            "code": 400,
            "message": "Contacts must either start with 61 or +61 and be exactly 11 digits long",
            "stack": "APIError: Contacts are required.",
        }
        requests_mock.post(f"{BASE}/api/v1/gateway", status_code=400, json=body)
        with pytest.raises(SmsRejectedError, match="Contacts must either start with 61"):
            hook.send_sms("0400000001", "hi")

    def test_a_failed_batch_does_not_hide_the_accepted_ones(self, make_conn: Any, requests_mock: Any):
        make_conn("cc", "cellcast")
        requests_mock.post(
            f"{BASE}/api/v1/gateway",
            [{"json": queued("400000001")}, {"status_code": 422, "json": envelope(False, "balance too low")}],
        )
        result = CellcastHook("cc", batch_size=1, max_workers=1).send_sms(["0400000001", "0400000002"], "hi")
        assert result.accepted == [{"to": "+61400000001", "message_id": "id-400000001", "conn_id": "cc"}]
        assert result.rejected[0]["to"] == "+61400000002"
        assert result.rejected[0]["code"] == "insufficient_credit"

    def test_status_false_on_200_is_a_rejection(self, hook: CellcastHook, requests_mock: Any):
        requests_mock.post(f"{BASE}/api/v1/gateway", json=envelope(False, "Something is wrong"))
        with pytest.raises(SmsRejectedError, match="Something is wrong"):
            hook.send_sms("0400000001", "hi")

    def test_missing_token_fails_before_any_request(self, make_conn: Any, requests_mock: Any):
        make_conn("notoken", "cellcast", password=None)
        with pytest.raises(SmsAuthError, match="password field"):
            CellcastHook("notoken").send_sms("0400000001", "hi")
        assert requests_mock.call_count == 0


class TestSendChat:
    def test_request_body_matches_the_docs(self, hook: CellcastHook, requests_mock: Any):
        answer = envelope(
            message="Chat message(s) sent successfully",
            data=[{"number": "61400000000", "message": "hi"}, {"number": "61400000001", "message": "hi"}],
        )
        requests_mock.post(f"{BASE}/api/v1/chat", json=answer)
        result = hook.send_chat(
            ["0400000000", "0400000001"], "hi", sms_template_id="T1", rms_template_id="R1", sender="YourSender"
        )
        request = requests_mock.request_history[0]
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert request.json() == {
            "sender": "YourSender",
            "number": ["+61400000000", "+61400000001"],
            "countryCode": "61",
            "message": "hi",
            "smsTemplateId": "T1",
            "rmsTemplateId": "R1",
        }
        assert [a["to"] for a in result.accepted] == ["+61400000000", "+61400000001"]

    def test_number_missing_from_the_answer_is_unknown_not_accepted(self, hook: CellcastHook, requests_mock: Any):
        answer = envelope(data=[{"number": "61400000000", "message": "hi"}])
        requests_mock.post(f"{BASE}/api/v1/chat", json=answer)
        result = hook.send_chat(["0400000000", "0400000001"], "hi")
        assert [a["to"] for a in result.accepted] == ["+61400000000"]
        assert result.rejected == [
            {"to": "+61400000001", "code": "delivery_unknown", "reason": result.rejected[0]["reason"]}
        ]


class TestSendMms:
    def test_multipart_fields_and_media_upload(self, hook: CellcastHook, requests_mock: Any, tmp_path: Path):
        requests_mock.post(f"{BASE}/api/v1/gatewaymms", json=queued("400000000", "400000001"))
        media = tmp_path / "promo.png"
        media.write_bytes(PNG)
        gif = "https://media1.tenor.com/m/UTrLSr85tYEAAAAC/happy-cat-cat.gif"
        result = hook.send_mms(["+61400000000", "0400000001"], "Test MMS\nfrom API", media=media, gif_url=gif)
        request = requests_mock.request_history[0]
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
        fields = multipart_fields(request.headers["Content-Type"], request.body)
        assert fields == {
            "message": "Test MMS\r\nfrom API",
            "sender": "MyCompany",
            "gif": gif,
            "media": ("promo.png", PNG, "image/png"),
            "contacts": json.dumps(["+61400000000", "+61400000001"]),
        }
        assert len(result.accepted) == 2

    def test_gif_only_mms_is_still_multipart(self, hook: CellcastHook, requests_mock: Any):
        requests_mock.post(f"{BASE}/api/v1/gatewaymms", json=queued("400000000"))
        hook.send_mms("0400000000", "hi", gif_url="https://example.com/a.gif")
        request = requests_mock.request_history[0]
        fields = multipart_fields(request.headers["Content-Type"], request.body)
        assert set(fields) == {"message", "sender", "gif", "contacts"}

    def test_media_rules_are_checked_before_sending(self, hook: CellcastHook, requests_mock: Any, tmp_path: Path):
        gif = tmp_path / "cat.gif"
        gif.write_bytes(b"GIF89a")
        with pytest.raises(SmsValidationError, match="gif_url"):
            hook.send_mms("0400000000", "hi", media=gif)
        with pytest.raises(SmsValidationError, match="230 KB"):
            hook.send_mms("0400000000", "hi", media=PNG + b"\0" * 240_000)
        with pytest.raises(SmsValidationError, match="needs media"):
            hook.send_mms("0400000000", "hi")
        with pytest.raises(SmsValidationError, match="at most 5000"):
            hook.send_mms("0400000000", "x" * 100_000, media=PNG)
        with pytest.raises(SmsValidationError, match="control character"):
            hook.send_mms("0400000000", "a\x00b", media=PNG)
        assert requests_mock.call_count == 0


class TestInbound:
    page = staticmethod(cellcast_responses)

    def test_pages_until_since_and_normalizes(self, hook: CellcastHook, requests_mock: Any):
        url = f"{BASE}/api/v1/apiClient/getResponses"
        requests_mock.get(
            url,
            [
                {
                    "json": self.page(
                        {
                            "from": "400000001",
                            "body": "YES",
                            "received_at": "2030-01-03T00:00:00.000Z",
                            "message_id": "m3",
                        }
                    )
                },
                {
                    "json": self.page(
                        {
                            "from": "400000002",
                            "body": "no",
                            "received_at": "2030-01-02T00:00:00.455Z",
                            "message_id": "",
                        },
                        {"from": "400000003", "body": "old", "received_at": "2029-12-31T00:00:00Z", "message_id": "m1"},
                    )
                },
                {
                    "json": self.page(
                        {
                            "from": "400000004",
                            "body": "older",
                            "received_at": "2029-01-01T00:00:00Z",
                            "message_id": "m0",
                        }
                    )
                },
            ],
        )
        messages = list(hook.iter_messages(since="2030-01-01T00:00:00Z"))
        assert [r.qs["page"] for r in requests_mock.request_history] == [["1"], ["2"]]
        assert [m.text for m in messages] == ["YES", "no"]
        assert messages[0].from_number == "+61400000001"
        assert messages[0].message_id == "m3"
        assert messages[1].message_id.startswith("derived-")
        assert messages[1].received_at == datetime(2030, 1, 2, 0, 0, 0, 455000, tzinfo=timezone.utc)

    def test_stops_on_an_empty_page(self, hook: CellcastHook, requests_mock: Any):
        requests_mock.get(f"{BASE}/api/v1/apiClient/getResponses", [{"json": self.page()}])
        assert list(hook.iter_messages()) == []

    def test_test_connection(self, hook: CellcastHook, requests_mock: Any):
        requests_mock.get(f"{BASE}/api/v1/apiClient/getResponses", json=self.page())
        assert hook.test_connection() == (True, "Connected to Cellcast SMS: the token was accepted.")
        requests_mock.get(f"{BASE}/api/v1/apiClient/getResponses", status_code=401, json={"message": "Token expired"})
        ok, message = CellcastHook().test_connection()
        assert not ok and "Token expired" in message and TOKEN not in message


def test_format_schedule_is_utc_with_milliseconds() -> None:
    moment = datetime(2031, 8, 15, 0, 58, 0, 981000, tzinfo=timezone(timedelta(hours=10)))
    assert format_schedule(moment) == "2031-08-14T14:58:00.981Z"


class TestConfirmSent:
    """Settling recipients in doubt with Cellcast's sent-message list (``GET /api/v2/report/message``)."""

    SINCE = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)

    @staticmethod
    def record(receiver: str, text: str, at: str, message_id: str) -> dict[str, Any]:
        return {
            "_id": message_id,
            "status": "sent",
            "message": text,
            "sender": "Acme",
            "receiver": receiver,
            "createdAt": at,
        }

    def test_the_documented_query_and_what_it_settles(self, hook: CellcastHook, requests_mock: Any) -> None:
        items = [
            self.record("400000001", "hello", "2030-01-01T12:00:03.000Z", "c1"),
            self.record("400000002", "hello", "2030-01-01T11:58:00.000Z", "c0"),  # before the claim
            self.record("400000003", "other", "2030-01-01T12:00:03.000Z", "c3"),
        ]
        requests_mock.get(f"{BASE}/api/v2/report/message", json=envelope(data={"items": items}))
        numbers = ["+61400000001", "+61400000002", "+61400000003"]
        check = hook.confirm_sent(numbers, "hello", since=self.SINCE)
        assert check is not None
        assert check.found == {"+61400000001": "c1"} and check.absent == {"+61400000002", "+61400000003"}
        (request,) = requests_mock.request_history
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        assert request.qs == {
            "page": ["1"],
            "limit": ["100"],
            "camptype": ["sms"],
            "requestfrom": ["api"],
            "fromdate": ["2030-01-01"],
            "todate": [today],
        }

    def test_a_full_page_at_the_cap_leaves_the_rest_in_doubt(self, hook: CellcastHook, requests_mock: Any) -> None:
        items = [self.record("400000009", "hello", "2030-01-01T12:00:03.000Z", f"c{i}") for i in range(100)]
        requests_mock.get(f"{BASE}/api/v2/report/message", json=envelope(data={"items": items}))
        check = hook.confirm_sent(["+61400000001"], "hello", since=self.SINCE)
        assert check is not None and check.found == {} and check.absent == set()
        assert len(requests_mock.request_history) == 20  # bounded
