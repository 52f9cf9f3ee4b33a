"""Delivery reports and webhook payloads, per provider: the documented examples (delivery-and-webhooks.md)
read into ``InboundMessage``/``DeliveryReport``, the report requests on the wire, and what a careless or
hostile provider could send instead."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_sms.core.errors import SmsUnsupportedFeatureError
from airflow_provider_sms.core.results import DeliveryReport
from airflow_provider_sms.hooks.cellcast import CellcastHook
from airflow_provider_sms.hooks.clickatell import ClickatellHook, delivery_status
from airflow_provider_sms.hooks.cloudware import CloudwareHook
from tests.conftest import TOKEN
from tests.payloads import CELLCAST, CLOUDWARE_MESSAGES, cellcast_envelope, cloudware_item

# The providers' own examples, as their pages give them.
CELLCAST_RECEIVE = {
    "_id": "66b5b93b1e2c012dfe964000",
    "status": "delivered",
    "type": "receive",
    "message": "This is reply message",
    "sender": "+61400000000",
    "receiver": "+61400000001",
}
CELLCAST_STATUS = {
    "_id": "66b5b93b1e2c012dfe964000",
    "status": "delivered",
    "type": "send",
    "sender": "cellcast",
    "receiver": "+61400000001",
}
CLICKATELL_REPLY = {
    "integrationId": "abc",
    "integrationName": "My integration",
    "event": {
        "moText": [
            {
                "channel": "sms",
                "messageId": "mo-1",
                "relatedMessageId": "mt-1",
                "relatedClientMessageId": "",
                "from": "2799900001",
                "to": "2799900002",
                "timestamp": 1506607698000,
                "content": "Text Content of the reply message",
                "charset": "UTF-8",
            }
        ]
    },
}
CLICKATELL_STATUS = {
    "integrationName": "My integration",
    "messageId": "mt-1",
    "requestId": "r-1",
    "clientMessageId": "",
    "to": "2799900001",
    "from": "2799900002",
    "statusCode": 5,
    "status": "RECEIVED_BY_RECIPIENT",
    "statusDescription": "Delivered to device",
    "timestamp": 1506607698000,
}
CLOUDWARE_RECEIVED = {
    "type": "message_received",
    "from": "1234567890",
    "to": "0987654321",
    "message": "Hello, World!",
    "message_id": "1234567890",
    "created_at": "2020-01-01T00:00:00Z",
    "sent_at": "2020-01-01T00:00:00Z",
}


@pytest.fixture
def cellcast(make_conn: Any) -> CellcastHook:
    make_conn("cellcast_default", "cellcast")
    return CellcastHook()


@pytest.fixture
def clickatell(make_conn: Any) -> ClickatellHook:
    make_conn("clickatell_default", "clickatell", country_code="27")
    return ClickatellHook()


@pytest.fixture
def cloudware(make_conn: Any) -> CloudwareHook:
    make_conn("cloudware_default", "cloudware")
    return CloudwareHook()


class TestWebhookPayloads:
    def test_cellcast_receive_url(self, cellcast: CellcastHook) -> None:
        (message,), reports = cellcast.parse_webhook(CELLCAST_RECEIVE)
        assert reports == []
        assert (message.message_id, message.from_number, message.to_number, message.text) == (
            "66b5b93b1e2c012dfe964000",
            "+61400000000",
            "+61400000001",
            "This is reply message",
        )

    def test_cellcast_status_url(self, cellcast: CellcastHook) -> None:
        messages, (report,) = cellcast.parse_webhook(CELLCAST_STATUS)
        assert messages == []
        assert (report.message_id, report.to, report.status, report.provider_status) == (
            "66b5b93b1e2c012dfe964000",
            "+61400000001",
            "delivered",
            "delivered",
        )

    @pytest.mark.parametrize(
        ("word", "status"),
        [
            ("received", "delivered"),
            ("expired", "expired"),
            ("dead", "failed"),
            ("rejected", "rejected"),
            ("failed", "failed"),
            ("something-new", "unknown"),
        ],
    )
    def test_cellcast_documented_status_words(self, cellcast: CellcastHook, word: str, status: str) -> None:
        _, (report,) = cellcast.parse_webhook({**CELLCAST_STATUS, "status": word})
        assert report.status == status and report.provider_status == word

    def test_cellcast_older_inbound_webhook(self, cellcast: CellcastHook) -> None:
        older = {
            "from": "0400000001",
            "body": "YES",
            "received_at": "2030-01-01 09:00:00",
            "message_id": "77",
            "custom_string": "",
            "type": "SMS",
        }
        (message,), _ = cellcast.parse_webhook(older)
        assert (message.message_id, message.from_number, message.text) == ("77", "+61400000001", "YES")

    def test_clickatell_reply_callback(self, clickatell: ClickatellHook) -> None:
        (message,), reports = clickatell.parse_webhook(CLICKATELL_REPLY)
        assert reports == []
        # the page's example number is not a real South African number: it is kept as written
        assert message.message_id == "mo-1" and message.from_number == "2799900001"
        assert message.received_at == datetime(2017, 9, 28, 14, 8, 18, tzinfo=timezone.utc)  # epoch milliseconds

    def test_clickatell_status_callback_as_json_and_as_query_parameters(self, clickatell: ClickatellHook) -> None:
        _, (posted,) = clickatell.parse_webhook(CLICKATELL_STATUS)
        as_query = {k: str(v) for k, v in CLICKATELL_STATUS.items()}  # a GET callback: everything is text
        _, (got,) = clickatell.parse_webhook(as_query)
        assert posted.status == got.status == "delivered"
        assert posted.at == got.at == datetime(2017, 9, 28, 14, 8, 18, tzinfo=timezone.utc)
        assert posted.provider_status == "5 RECEIVED_BY_RECIPIENT"

    @pytest.mark.parametrize(
        ("code", "word", "status"),
        [
            ("1", "", "unknown"),
            ("2", "", "queued"),
            ("3", "", "queued"),
            ("4", "", "sent"),
            ("6", "", "delivered"),
            ("21", "", "unsubscribed"),
            ("25", "", "failed"),
            ("100", "", "failed"),
            ("20", "MESSAGE_EXPIRED", "expired"),
            ("x", "", "unknown"),
        ],
    )
    def test_clickatell_status_codes(self, code: str, word: str, status: str) -> None:
        assert delivery_status(code, word) == status

    def test_cloudware_received_and_sent(self, cloudware: CloudwareHook) -> None:
        sent = {**CLOUDWARE_RECEIVED, "type": "message_sent", "message_id": "999"}
        (message,), (report,) = cloudware.parse_webhook([CLOUDWARE_RECEIVED, sent])
        assert message.message_id == "1234567890" and message.text == "Hello, World!"
        assert (report.message_id, report.status, report.provider_status) == ("999", "sent", "message_sent")

    @pytest.mark.parametrize("payload", [None, [], "text", 7, [1, "x", None], {"type": "receive"}, {"event": "x"}])
    def test_garbage_yields_nothing_and_raises_nothing(
        self, cellcast: CellcastHook, clickatell: ClickatellHook, cloudware: CloudwareHook, payload: Any
    ) -> None:
        for hook in (clickatell, cloudware):
            assert hook.parse_webhook(payload) == ([], [])
        _messages, reports = cellcast.parse_webhook(payload)
        assert reports == []  # a "receive" without a sender is still a (strange) message; no report

    def test_unknown_fields_are_ignored_and_an_echoed_token_is_scrubbed(self, cloudware: CloudwareHook) -> None:
        item = {**CLOUDWARE_RECEIVED, "new_field": {"nested": TOKEN}, "message": f"token {TOKEN}"}
        (message,), _ = cloudware.parse_webhook(item)
        assert TOKEN not in repr(message.to_dict())

    def test_a_garbage_timestamp_does_not_drop_the_reply(self, clickatell: ClickatellHook) -> None:
        reply = {**CLICKATELL_REPLY["event"]["moText"][0], "timestamp": "soon"}
        (message,), _ = clickatell.parse_webhook({"event": {"moText": [reply]}})
        assert message.received_at.tzinfo is not None


class TestDeliveryReports:
    def test_cellcast_asks_the_v2_report_endpoint_once_per_message(
        self, cellcast: CellcastHook, requests_mock: Any
    ) -> None:
        data = {
            "_id": "a1",
            "status": "delievered",
            "replyStop": False,
            "receiver": "400000002",
            "updatedAt": "2030-01-01T09:00:00.000Z",
        }
        requests_mock.get(f"{CELLCAST}/api/v2/report/message/a1", json=cellcast_envelope(data=data))
        requests_mock.get(
            f"{CELLCAST}/api/v2/report/message/a%2F2",
            json=cellcast_envelope(data={**data, "_id": "a/2", "status": "sent", "replyStop": True}),
        )
        (first, second) = cellcast.get_delivery_reports(["a1", "a/2", "a1"])
        history = requests_mock.request_history
        assert [r.path for r in history] == ["/api/v2/report/message/a1", "/api/v2/report/message/a%2f2"]
        assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in history)
        assert (first.status, first.to, first.at) == (
            "delivered",
            "+61400000002",
            datetime(2030, 1, 1, 9, tzinfo=timezone.utc),
        )
        assert second.status == "unsubscribed"  # replyStop: the recipient opted out

    @pytest.mark.parametrize(
        "answer",
        [
            {"status_code": 404, "json": {"code": 404, "message": "Message not found"}},
            {"json": cellcast_envelope(status=False, data={})},
            {"json": {"status": True, "data": "nope"}},
            {"json": ["not", "an", "envelope"]},
        ],
    )
    def test_cellcast_an_unreadable_or_unknown_answer_is_unknown(
        self, cellcast: CellcastHook, requests_mock: Any, answer: dict[str, Any]
    ) -> None:
        requests_mock.get(f"{CELLCAST}/api/v2/report/message/zz", **answer)
        (report,) = cellcast.get_delivery_reports(["zz"])
        assert report == DeliveryReport("cellcast", "zz", None, "unknown")

    def test_cellcast_a_maintenance_page_is_an_outage_to_poll_through(
        self, cellcast: CellcastHook, requests_mock: Any
    ) -> None:
        from airflow_provider_sms.core.errors import SmsProviderUnavailableError

        requests_mock.get(f"{CELLCAST}/api/v2/report/message/zz", text="<html>gateway</html>")
        with pytest.raises(SmsProviderUnavailableError) as caught:
            cellcast.get_delivery_reports(["zz"])
        assert caught.value.retryable

    def test_cloudware_reads_message_sent_records_and_stops_paging_when_all_are_found(
        self, cloudware: CloudwareHook, requests_mock: Any
    ) -> None:
        first = {
            "data": [
                cloudware_item("hi", "2030-01-01T09:00:00Z", "s1", kind="message_sent", to="61400000001"),
                cloudware_item("YES", "2030-01-01T08:59:00Z", "r1"),
            ],
            "next_page": f"{CLOUDWARE_MESSAGES}?token=2",
        }
        requests_mock.get(CLOUDWARE_MESSAGES, json=first)
        (report,) = cloudware.get_delivery_reports(["s1"])
        assert requests_mock.call_count == 1
        assert (report.status, report.to) == ("sent", "+61400000001")

    def test_cloudware_an_id_it_never_lists_is_unknown(self, cloudware: CloudwareHook, requests_mock: Any) -> None:
        requests_mock.get(CLOUDWARE_MESSAGES, json={"data": [], "next_page": None})
        assert [r.status for r in cloudware.get_delivery_reports(["nope"])] == ["unknown"]

    def test_clickatell_has_no_report_api_and_says_where_to_look(self, clickatell: ClickatellHook) -> None:
        with pytest.raises(SmsUnsupportedFeatureError, match=r"sms_status_asset\('clickatell_default'\)"):
            clickatell.get_delivery_reports(["x"])
