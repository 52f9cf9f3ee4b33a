"""Smart encoding, sender IDs, validity, allowed countries and caps, asserted on the actual request."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_sms.core.errors import SmsUnsupportedFeatureError, SmsValidationError
from airflow_provider_sms.hooks.cellcast import CellcastHook
from airflow_provider_sms.hooks.clickatell import ClickatellHook
from airflow_provider_sms.hooks.cloudware import CloudwareHook
from tests.payloads import (
    CELLCAST_GATEWAY,
    CLICKATELL_MESSAGES,
    CLOUDWARE_OK,
    CLOUDWARE_SEND,
    cellcast_queued,
    clickatell_answer,
)
from tests.wire import xml_root

CURLY = "It’s on — 5–6 pm… see you"  # 4 look-alikes and a non-breaking space below
PLAIN = "It's on - 5-6 pm... see you"


# --- smart encoding ---------------------------------------------------------------------------------


def test_look_alikes_go_on_the_wire_as_gsm7(make_conn: Any, requests_mock: Any) -> None:
    make_conn("cellcast_default", "cellcast")
    requests_mock.post(CELLCAST_GATEWAY, json=cellcast_queued("400000001"))
    result = CellcastHook().send_sms("0400000001", CURLY.replace(" see", "\u00a0see"))
    assert requests_mock.request_history[0].json()["message"] == PLAIN
    assert (result.encoding, result.segments) == ("GSM-7", 1)


def test_smart_encoding_false_sends_exactly_what_was_given(make_conn: Any, requests_mock: Any) -> None:
    make_conn("clickatell_default", "clickatell")
    requests_mock.post(CLICKATELL_MESSAGES, status_code=202, json=clickatell_answer("61400000001"))
    result = ClickatellHook(smart_encoding=False).send_sms("+61400000001", CURLY)
    assert requests_mock.request_history[0].json()["content"] == CURLY
    assert result.encoding == "UCS-2"


def test_a_character_with_no_gsm7_form_keeps_the_text_as_given(make_conn: Any, requests_mock: Any) -> None:
    make_conn("cloudware_default", "cloudware")
    requests_mock.post(CLOUDWARE_SEND, json=CLOUDWARE_OK)
    text = "Cześć — it’s 😀"
    result = CloudwareHook().send_sms("+2348012345678", text)
    assert requests_mock.request_history[0].json()["message"] == text
    assert result.encoding == "UCS-2"


def test_a_stray_quote_no_longer_triples_a_long_text(make_conn: Any, requests_mock: Any) -> None:
    make_conn("clickatell_default", "clickatell")
    text = "a" * 158 + "’"
    plan = ClickatellHook(smart_encoding=False).send_sms("+61400000001", text, dry_run=True)
    assert (plan.encoding, plan.segments) == ("UCS-2", 3)
    plan = ClickatellHook().send_sms("+61400000001", text, dry_run=True)
    assert (plan.encoding, plan.segments) == ("GSM-7", 1)
    assert plan.estimate is not None and plan.estimate["smart_encoding_replaced"] == 1
    assert requests_mock.request_history == []


# --- sender IDs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sender", "why"),
    [("AB", "2 characters; Cellcast SMS accepts 3 to 11"), ("My_Co", "characters other than"), ("TwelveChars1", "11")],
)
def test_bad_sender_is_refused_before_any_request(make_conn: Any, requests_mock: Any, sender: str, why: str) -> None:
    make_conn("cellcast_default", "cellcast")
    with pytest.raises(SmsValidationError, match=why):
        CellcastHook().send_sms("0400000001", "hi", sender=sender)
    assert requests_mock.request_history == []


def test_numeric_sender_length_follows_each_providers_docs(make_conn: Any, requests_mock: Any) -> None:
    make_conn("cellcast_default", "cellcast")
    make_conn("clickatell_default", "clickatell")
    requests_mock.post(CELLCAST_GATEWAY, json=cellcast_queued("400000001"))
    sixteen = "1234567890123456"
    CellcastHook().send_sms("0400000001", "hi", sender=sixteen)  # Cellcast documents 16 digits
    assert requests_mock.request_history[0].json()["sender"] == sixteen
    with pytest.raises(SmsValidationError, match="16 digits; Clickatell SMS accepts at most 15"):
        ClickatellHook().send_sms("+61400000001", "hi", sender=sixteen)
    assert len(requests_mock.request_history) == 1


def test_registered_senders_refuse_any_other_and_name_the_list(make_conn: Any, requests_mock: Any) -> None:
    make_conn("clickatell_default", "clickatell", sender="Unlisted", registered_senders="MyCompany, 61400000009")
    requests_mock.post(CLICKATELL_MESSAGES, status_code=202, json=clickatell_answer("61400000001"))
    hook = ClickatellHook()
    with pytest.raises(
        SmsValidationError, match=r"'Unlisted' is not in .*registered_senders \('MyCompany', '61400000009'\)"
    ):
        hook.send_sms("+61400000001", "hi")  # the connection's default sender is checked too
    with pytest.raises(SmsValidationError, match="'Other' is not in"):
        hook.send_sms("+61400000001", "hi", sender="Other")
    assert requests_mock.request_history == []
    hook.send_sms("+61400000001", "hi", sender="+61400000009")
    assert requests_mock.request_history[0].json()["from"] == "61400000009"


# --- validity ----------------------------------------------------------------------------------------


def test_validity_is_clickatells_validity_period_in_minutes(make_conn: Any, requests_mock: Any) -> None:
    make_conn("clickatell_default", "clickatell")
    requests_mock.post(CLICKATELL_MESSAGES, status_code=202, json=clickatell_answer("61400000001"))
    ClickatellHook(validity=timedelta(hours=2)).send_sms("+61400000001", "hi")
    assert requests_mock.request_history[0].json() == {"content": "hi", "to": ["61400000001"], "validityPeriod": 120}


def test_validity_in_clickatells_xml_body(make_conn: Any, requests_mock: Any) -> None:
    make_conn("clickatell_default", "clickatell", request_format="xml")
    answer = (
        '<?xml version="1.0"?><SendMessagesResponse><Messages><Message><ApiMessageId>m1</ApiMessageId>'
        "<Accepted>true</Accepted><To>61400000001</To></Message></Messages></SendMessagesResponse>"
    )
    requests_mock.post(CLICKATELL_MESSAGES, status_code=202, text=answer)
    ClickatellHook(validity=timedelta(minutes=45)).send_sms("+61400000001", "hi")
    assert xml_root(requests_mock.request_history[0].body).findtext("ValidityPeriod") == "45"


@pytest.mark.parametrize(("conn_type", "hook_class"), [("cellcast", CellcastHook), ("cloudware", CloudwareHook)])
def test_validity_is_refused_where_the_provider_has_none(
    make_conn: Any, requests_mock: Any, conn_type: str, hook_class: Any
) -> None:
    make_conn(f"{conn_type}_default", conn_type)
    with pytest.raises(
        SmsUnsupportedFeatureError, match=r"leave validity out or send through Clickatell \(validityPeriod"
    ):
        hook_class(validity=timedelta(hours=1)).send_sms("+61400000001", "hi")
    assert requests_mock.request_history == []


def test_validity_must_be_whole_minutes() -> None:
    with pytest.raises(SmsValidationError, match="whole number of minutes"):
        ClickatellHook(validity=timedelta(seconds=90))


# --- allowed countries -----------------------------------------------------------------------------------


def test_numbers_outside_allowed_countries_are_rejected_per_number_and_never_sent(
    make_conn: Any, requests_mock: Any
) -> None:
    make_conn("clickatell_default", "clickatell", allowed_countries=["au", "GB"])
    requests_mock.post(CLICKATELL_MESSAGES, status_code=202, json=clickatell_answer("61400000001", "447400123456"))
    result = ClickatellHook().send_sms(["+61400000001", "+6421000000", "+447400123456", "+88213000000"], "hi")
    assert requests_mock.request_history[0].json()["to"] == ["61400000001", "447400123456"]
    assert [(r["to"], r["code"]) for r in result.rejected] == [
        ("+6421000000", "country_not_allowed"),
        ("+88213000000", "country_not_allowed"),
    ]
    assert "is in NZ; connection 'clickatell_default' sends only to AU, GB" in result.rejected[0]["reason"]
    assert "Add the country there" in result.rejected[0]["reason"]


def test_a_send_with_no_allowed_recipient_makes_no_request(make_conn: Any, requests_mock: Any) -> None:
    make_conn("cloudware_default", "cloudware", allowed_countries="AU")
    result = CloudwareHook().send_sms(["+2348012345678", "+2348012345679"], "hi")
    assert requests_mock.request_history == []
    assert result.accepted == [] and result.requests == 0 and not result.ok
    assert [r["code"] for r in result.rejected] == ["country_not_allowed"] * 2


def test_a_bad_allowed_countries_entry_names_itself(make_conn: Any, requests_mock: Any) -> None:
    make_conn("clickatell_default", "clickatell", allowed_countries="AU, Australia")
    with pytest.raises(SmsValidationError, match="'AUSTRALIA', not ISO 3166"):
        ClickatellHook().send_sms("+61400000001", "hi")
    assert requests_mock.request_history == []


# --- cost and caps -------------------------------------------------------------------------------------------


PRICES = {"AU": 0.055, "GB": 0.04, "default": 0.08}


def test_dry_run_reports_parts_and_cost_per_recipient(make_conn: Any, requests_mock: Any) -> None:
    make_conn("clickatell_default", "clickatell", prices=PRICES)
    plan = ClickatellHook().send_sms(["+61400000001", "+447400123456", "+6421000000"], "a" * 200, dry_run=True)
    assert requests_mock.request_history == []
    estimate = plan.to_dict()["estimate"]
    assert estimate["recipients"] == [
        {"to": "+61400000001", "country": "AU", "parts": 2, "cost": 0.11},
        {"to": "+447400123456", "country": "GB", "parts": 2, "cost": 0.08},
        {"to": "+6421000000", "country": "NZ", "parts": 2, "cost": 0.16},
    ]
    assert (estimate["total_parts"], estimate["total_cost"], estimate["encoding"]) == (6, 0.35, "GSM-7")
    assert estimate["balance"] is None and "no account-balance endpoint" in estimate["balance_note"]


def test_max_parts_refuses_the_whole_send_naming_estimate_and_cap(make_conn: Any, requests_mock: Any) -> None:
    make_conn("cellcast_default", "cellcast")
    numbers = [f"+6140000000{i}" for i in range(5)]
    with pytest.raises(
        SmsValidationError, match=r"needs 10 SMS parts \(5 recipient\(s\) x 2 part\(s\), GSM-7\); max_parts is 9"
    ):
        CellcastHook(max_parts=9).send_sms(numbers, "a" * 200)
    assert requests_mock.request_history == []


def test_max_cost_refuses_the_whole_send_naming_estimate_and_cap(make_conn: Any, requests_mock: Any) -> None:
    make_conn("clickatell_default", "clickatell", prices='{"AU": 0.055}')
    with pytest.raises(SmsValidationError, match=r"estimated at 0.22 .*; max_cost is 0.2\. Nothing was sent"):
        ClickatellHook(max_cost=0.2).send_sms(["+61400000001", "+61400000002"], "a" * 200)
    with pytest.raises(SmsValidationError, match="add NZ or a 'default' to connection 'clickatell_default''s prices"):
        ClickatellHook(max_cost=5).send_sms(["+6421000000"], "hi")
    assert requests_mock.request_history == []
    requests_mock.post(CLICKATELL_MESSAGES, status_code=202, json=clickatell_answer("61400000001"))
    ClickatellHook(max_cost=0.2).send_sms(["+61400000001"], "a" * 200)  # 0.11: under the cap, sent
    assert requests_mock.request_history[0].json()["content"] == "a" * 200


def test_max_cost_without_a_price_table_says_how_to_give_one(make_conn: Any, requests_mock: Any) -> None:
    make_conn("cloudware_default", "cloudware")
    with pytest.raises(SmsValidationError, match="give connection 'cloudware_default' a prices extra"):
        CloudwareHook(max_cost=1).send_sms("+2348012345678", "hi")
    assert requests_mock.request_history == []


@pytest.mark.parametrize("conn_type", ["cellcast", "clickatell", "cloudware"])
def test_every_connection_form_has_the_three_extras(conn_type: str) -> None:
    from airflow_provider_sms.connections import CONNECTION_TYPES
    from airflow_provider_sms.get_provider_info import get_provider_info

    fields = CONNECTION_TYPES[conn_type]["conn-fields"]
    assert {"registered_senders", "allowed_countries", "prices"} <= set(fields)
    assert '{"AU": 0.055, "GB": 0.04, "default": 0.08}' in fields["prices"]["description"]
    published = {c["connection-type"]: c for c in get_provider_info()["connection-types"]}
    assert {"registered_senders", "allowed_countries", "prices"} <= set(published[conn_type]["conn-fields"])
