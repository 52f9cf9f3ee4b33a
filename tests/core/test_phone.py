from __future__ import annotations

import pytest

from airflow_provider_sms.core.errors import SmsValidationError
from airflow_provider_sms.core.phone import (
    normalize_number,
    prepare_recipients,
    region_for_country_code,
    split_recipients,
)


@pytest.mark.parametrize("raw", ["+61400000000", "61400000000", "0400000000", "400000000", "0061 400 000 000"])
def test_australian_forms_normalize_to_e164(raw: str) -> None:
    assert normalize_number(raw, "AU") == "+61400000000"


def test_digits_with_country_code_and_no_plus_are_international() -> None:
    assert normalize_number("2348012345678") == "+2348012345678"
    assert normalize_number("2348012345678", "AU") == "+2348012345678"


@pytest.mark.parametrize("raw", ["", "   ", "123", "not a number", "+999123"])
def test_invalid_numbers_raise_with_the_input_named(raw: str) -> None:
    with pytest.raises(SmsValidationError):
        normalize_number(raw, "AU")


def test_national_number_without_region_asks_for_country_code() -> None:
    with pytest.raises(SmsValidationError, match="country code"):
        normalize_number("0400000000")


def test_split_recipients_accepts_strings_lists_and_nesting() -> None:
    assert split_recipients("+61400000001, +61400000002;0400000003\n") == ["+61400000001", "+61400000002", "0400000003"]
    assert split_recipients(["a, b", ["c"]]) == ["a", "b", "c"]
    assert split_recipients(None) == []


def test_prepare_recipients_deduplicates_in_order_and_rejects_invalid() -> None:
    numbers, rejected = prepare_recipients(["0400000002", "+61400000001", "61400000002", "junk"], "AU")
    assert numbers == ["+61400000002", "+61400000001"]
    assert rejected == [{"to": "junk", "code": "invalid_number", "reason": rejected[0]["reason"]}]
    assert "junk" in rejected[0]["reason"]


def test_region_for_country_code() -> None:
    assert region_for_country_code("61") == "AU"
    assert region_for_country_code("+234") == "NG"
    assert region_for_country_code(None) is None
    with pytest.raises(SmsValidationError):
        region_for_country_code("abc")


@pytest.mark.parametrize(
    ("raw", "region", "says"),
    [
        ("0400000001", None, "has no country code and none is assumed: write it with its country code"),
        ("+15550100", None, "is not a valid +1 (US) number: too short (a local number: add its area code)"),
        ("+614001", None, "is not a valid +61 (AU) number: too short"),
        ("0400 1", "AU", "is not a valid +61 (AU) number: no AU number has this length and prefix; AU was assumed"),
        ("+61199999999", None, "is not a valid +61 (AU) number: no AU number has this length and prefix"),
        ("+999123", None, "is not a phone number"),
    ],
)
def test_the_error_says_what_is_wrong_with_a_number(raw: str, region: str | None, says: str) -> None:
    with pytest.raises(SmsValidationError) as caught:
        normalize_number(raw, region)
    assert says in str(caught.value)
