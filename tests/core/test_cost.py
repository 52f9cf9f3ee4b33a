"""Prices, estimates and caps: parts per recipient times the connection's price for the country."""

from __future__ import annotations

from decimal import Decimal

import pytest

from airflow_provider_sms.core.cost import check_caps, combined, enforce_caps, estimate, parse_prices
from airflow_provider_sms.core.countries import country_of, parse_countries
from airflow_provider_sms.core.errors import SmsValidationError


def test_prices_from_a_dict_or_its_json() -> None:
    table = {"AU": Decimal("0.055"), "GB": Decimal("0.04"), "default": Decimal("0.08")}
    assert parse_prices({"au": 0.055, "GB": "0.04", "Default": 0.08}, conn_id="c") == table
    assert parse_prices('{"AU": 0.055, "GB": 0.04, "default": 0.08}', conn_id="c") == table
    assert parse_prices(None, conn_id="c") is None


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ('{"AU": -1}', "0 or more"),
        ('{"AU": "cheap"}', "0 or more"),
        ('{"AU": NaN}', "0 or more"),
        ('{"AU": true}', "0 or more"),
        ('{"Australia": 0.05}', "not a two-letter ISO"),
        ("[0.05]", "must map country codes"),
        ("{AU: 0.05}", "not valid JSON"),
    ],
)
def test_bad_price_tables_name_the_problem(raw: str, why: str) -> None:
    with pytest.raises(SmsValidationError, match=why):
        parse_prices(raw, conn_id="c")


def test_estimate_per_recipient_with_default_and_no_float_drift() -> None:
    prices = parse_prices({"AU": 0.1, "default": 0.2}, conn_id="c")
    plan = estimate(["+61400000001"] * 3 + ["+14155550123"], 3, prices, encoding="GSM-7", provider="cellcast")
    assert [r["cost"] for r in plan.recipients] == [0.3, 0.3, 0.3, 0.6]
    assert plan.total_cost == Decimal("1.5") and plan.total_parts == 12


def test_a_country_without_price_leaves_the_total_unknown() -> None:
    plan = estimate(
        ["+61400000001", "+6421000000"], 1, parse_prices({"AU": 0.1}, conn_id="c"), encoding=None, provider="x"
    )
    assert plan.total_cost is None and plan.unpriced == ["NZ"]
    with pytest.raises(SmsValidationError, match="add NZ or a 'default' to connection 'c''s prices"):
        enforce_caps(plan, None, Decimal(1), conn_id="c")
    enforce_caps(plan, 2, None, conn_id="c")  # max_parts alone needs no prices


def test_caps_are_checked_when_given() -> None:
    assert check_caps(5, 2.5) == (5, Decimal("2.5"))
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(SmsValidationError, match="max_parts"):
            check_caps(max_parts=bad)
    for bad in (-0.01, float("nan"), "1", True):
        with pytest.raises(SmsValidationError, match="max_cost"):
            check_caps(max_cost=bad)


def test_combined_estimate_adds_messages_up() -> None:
    prices = parse_prices({"default": 0.05}, conn_id="c")
    one = estimate(["+61400000001"], 2, prices, encoding="GSM-7", provider="x").to_dict()
    two = estimate(["+61400000002"], 3, prices, encoding="UCS-2", provider="x").to_dict()
    total = combined([one, two, None])
    assert (total.total_parts, total.total_cost, total.encoding) == (5, Decimal("0.25"), None)


def test_countries() -> None:
    assert country_of("+61400000001") == "AU" and country_of("+80012345678") is None
    assert parse_countries("au; nz", conn_id="c") == frozenset({"AU", "NZ"})
    assert parse_countries(["GB"], conn_id="c") == frozenset({"GB"})
    with pytest.raises(SmsValidationError, match="'UK', not ISO 3166"):
        parse_countries("UK", conn_id="c")


@pytest.mark.parametrize(
    "number",
    ["+447400123456", "+447911123456", "+6421000000", "+61891641234", "+16135550123", "+3906698", "+88213000000"],
)
def test_country_of_agrees_with_a_full_parse(number: str) -> None:
    import phonenumbers

    region = phonenumbers.region_code_for_number(phonenumbers.parse(number, None))
    assert country_of(number) == (region if region.isalpha() and region != "ZZ" else None)
