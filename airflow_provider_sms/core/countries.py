"""Countries of phone numbers and the connection's ``allowed_countries`` list.

A number's country is the ISO 3166 region ``phonenumbers`` gives its E.164 form (None for numbers of no
country, such as +800). With ``allowed_countries`` on a connection, numbers elsewhere are rejected
before any request as ``country_not_allowed``: the usual defence against SMS-pumping fraud, where a
form is abused to text premium numbers abroad.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from airflow_provider_sms.core.errors import SmsCountryNotAllowedError, SmsValidationError
from airflow_provider_sms.core.results import SendResult
from airflow_provider_sms.core.validation import list_extra


@lru_cache(maxsize=65536)
def country_of(number: str) -> str | None:
    """The ISO code (``AU``) of an E.164 number, or None when it belongs to no country.

    A calling code with one region (64: NZ) is read straight off the digits; one shared by several
    (61: AU, CX, CC; 44: GB, GG, JE, IM; 1: the NANP) asks ``phonenumbers`` which region's numbering
    plan the number is in, without parsing the text again (a send reads each number's country for
    its allow-list and its estimate: 10,000 numbers take a fraction of a second).
    """
    import phonenumbers  # loaded when a send runs, not when a DAG file builds an operator

    digits = number[1:] if number.startswith("+") else ""
    region: str | None = None
    if digits.isdigit() and digits.isascii():
        for width in (1, 2, 3):
            code = int(digits[:width])
            regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code)
            if regions is None:
                continue
            rest = digits[width:]
            if len(regions) == 1:
                region = regions[0]
            elif rest and not rest.startswith("0"):  # a leading zero (Italy) needs the full parse
                national = phonenumbers.PhoneNumber(country_code=code, national_number=int(rest))
                region = phonenumbers.region_code_for_number(national)
            else:
                break
            return region if region and region.isalpha() and region != "ZZ" else None
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return None
    return region if region and region.isalpha() and region != "ZZ" else None


def parse_countries(raw: Any, *, conn_id: str) -> frozenset[str] | None:
    """The ``allowed_countries`` extra (a list, a JSON list, or ``"AU, NZ"``) as ISO codes; None when unset.

    :raises SmsValidationError: naming any entry that is not an ISO 3166 two-letter code.
    """
    import phonenumbers

    items = list_extra(
        raw,
        conn_id=conn_id,
        name="allowed_countries",
        example='["AU", "NZ"] or AU, NZ',
        items_are="ISO codes",
        separators=",;",
        containers=(list, tuple, set, frozenset),
    )
    if items is None:
        return None
    codes = [item.upper() for item in items]
    unknown = [c for c in codes if c not in phonenumbers.SUPPORTED_REGIONS]
    if unknown:
        raise SmsValidationError(
            f"connection {conn_id!r}: allowed_countries has {', '.join(map(repr, unknown))}, not ISO 3166 "
            "two-letter country codes; write codes like AU, NZ, GB"
        )
    return frozenset(codes) or None


def screen_countries(
    numbers: Sequence[str], allowed: frozenset[str] | None, result: SendResult, *, conn_id: str
) -> list[str]:
    """The numbers in an allowed country; the others are added to ``result`` as ``country_not_allowed``."""
    if allowed is None:
        return list(numbers)
    listed = ", ".join(sorted(allowed))
    kept = []
    for number in numbers:
        country = country_of(number)
        if country in allowed:
            kept.append(number)
            continue
        where = f"in {country}" if country else "of no country"
        result.add_rejected(
            number,
            SmsCountryNotAllowedError.code,
            f"the number is {where}; connection {conn_id!r} sends only to {listed} (allowed_countries). "
            "Add the country there to send to it",
        )
    return kept
