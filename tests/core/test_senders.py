"""Sender IDs against each provider's documented rule and the connection's registered list."""

from __future__ import annotations

import pytest

from airflow_provider_sms.core.errors import SmsValidationError
from airflow_provider_sms.core.senders import check_registered, check_sender, parse_sender_list


@pytest.mark.parametrize("provider", ["cellcast", "clickatell", "cloudware"])
@pytest.mark.parametrize("sender", ["Bob", "MyCompany", "My-Co 1", "ABCDEFGHIJK", "+61400000001", "380671234567"])
def test_valid_senders_pass_everywhere(provider: str, sender: str) -> None:
    assert check_sender(sender, provider) == sender


@pytest.mark.parametrize(
    ("sender", "why"),
    [
        ("AB", "is 2 characters; cellcast accepts 3 to 11"),
        ("ABCDEFGHIJKL", "is 12 characters; cellcast accepts 3 to 11"),
        ("Acme!", "characters other than A-Z"),
        ("Café", "characters other than A-Z"),
        ("12345678901234567", "17 digits; cellcast accepts at most 16"),
    ],
)
def test_invalid_senders_name_the_rule(sender: str, why: str) -> None:
    with pytest.raises(SmsValidationError, match=why):
        check_sender(sender, "cellcast")


def test_numeric_limit_is_per_provider() -> None:
    assert check_sender("1234567890123456", "cellcast") == "1234567890123456"  # Cellcast documents 16
    with pytest.raises(SmsValidationError, match="at most 15"):
        check_sender("1234567890123456", "clickatell")


def test_blank_sender_is_the_providers_default() -> None:
    assert check_sender(None, "cellcast") is None
    assert check_sender("  ", "cellcast") is None


@pytest.mark.parametrize(
    "raw", [["MyCompany", "61400000009"], "MyCompany, 61400000009", '["MyCompany", "61400000009"]']
)
def test_registered_list_forms(raw: object) -> None:
    assert parse_sender_list(raw, conn_id="c") == ("MyCompany", "61400000009")


def test_registered_list_refuses_others_and_names_the_list() -> None:
    listed = ("MyCompany", "61400000009")
    check_registered("MyCompany", listed, conn_id="c")
    check_registered("+61400000009", listed, conn_id="c")  # the same number with its plus
    check_registered(None, listed, conn_id="c")  # the provider's own number is not a sender ID
    check_registered("Anyone", None, conn_id="c")
    with pytest.raises(SmsValidationError, match=r"'mycompany' is not in connection 'c''s registered_senders"):
        check_registered("mycompany", listed, conn_id="c")


def test_a_broken_registered_list_says_how_to_write_it() -> None:
    with pytest.raises(SmsValidationError, match="not a valid JSON list"):
        parse_sender_list('["MyCompany"', conn_id="c")
