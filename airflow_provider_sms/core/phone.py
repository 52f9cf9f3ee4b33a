"""Phone numbers: parse whatever users type into E.164 with ``phonenumbers``, and split recipient lists.

``normalize_number`` accepts international numbers with or without ``+``/``00`` and national numbers
in the connection's default region. ``prepare_recipients`` turns a list (or a comma-separated string)
into unique E.164 numbers in their first-seen order, plus a ``rejected`` entry for each number that is
not valid, so invalid numbers never reach a provider and nobody is texted twice by one send.
``phonenumbers`` is imported on first use, not when a DAG file is parsed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from airflow_provider_sms.core.errors import SmsInvalidNumberError, SmsValidationError

_SEPARATORS = re.compile(r"[\s().\-/]")


def region_for_country_code(country_code: str | int | None) -> str | None:
    """The ISO region (``AU``) for a calling code (``61``), or None when none is given."""
    if country_code in (None, ""):
        return None
    import phonenumbers

    code = str(country_code).lstrip("+")
    if not code.isdigit():
        raise SmsValidationError(f"country code {country_code!r} is not a calling code like 61")
    region = phonenumbers.region_code_for_country_code(int(code))
    if region == "ZZ":
        raise SmsValidationError(f"country code {country_code!r} is not a known calling code")
    return region


@lru_cache(maxsize=65536)
def _normalize_cached(text: str, default_region: str | None) -> str | None:
    import phonenumbers

    compact = _SEPARATORS.sub("", text)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    candidates: list[tuple[str, str | None]] = []
    if compact.startswith("+"):
        candidates.append((compact, None))
    else:
        if default_region:
            candidates.append((compact, default_region))
        if compact.isdigit():
            # Digits that already carry a country code, e.g. "2348012345678" or "61400000000".
            candidates.append(("+" + compact, None))
    for candidate, region in candidates:
        try:
            parsed = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        # Checking the default region first skips the search through every region that shares the
        # calling code (61 is AU, CC and CX); any other number gets the full check.
        in_home_region = (
            default_region is not None
            and phonenumbers.country_code_for_region(default_region) == parsed.country_code
            and phonenumbers.is_valid_number_for_region(parsed, default_region)
        )
        if in_home_region or phonenumbers.is_valid_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return None


def normalize_number(raw: str | int, default_region: str | None = None) -> str:
    """Return ``raw`` as an E.164 number (``+61400000000``) or raise ``SmsValidationError``.

    :param raw: what the user gave: ``"+61400000000"``, ``"61400000000"``, ``"0400000000"``,
        ``"0061 400 000 000"``; national forms need ``default_region``.
    :param default_region: ISO region used for numbers without a country code (``"AU"``).
    """
    text = str(raw).strip()
    if not text:
        raise SmsInvalidNumberError("an empty phone number was given")
    region = default_region.upper() if default_region else None
    number = _normalize_cached(text, region)
    if number is None:
        raise SmsInvalidNumberError(f"{text!r} {_why_invalid(text, region)}")
    return number


_REASONS = {
    "TOO_SHORT": "too short",
    "TOO_LONG": "too long",
    "INVALID_LENGTH": "the wrong length",
    "INVALID_COUNTRY_CODE": "not a known country code",
    "IS_POSSIBLE_LOCAL_ONLY": "too short (a local number: add its area code)",
}


def _why_invalid(text: str, region: str | None) -> str:
    """Why ``text`` is not a number: no country code (and none assumed), or invalid for its country."""
    import phonenumbers

    compact = _SEPARATORS.sub("", text)
    international = compact.startswith(("+", "00"))
    if not international and region is None and not compact.lstrip("+").startswith(tuple("123456789")):
        return (
            "has no country code and none is assumed: write it with its country code (+61400000001), "
            "or set the connection's country_code extra (61) for national numbers"
        )
    try:
        parsed = phonenumbers.parse("+" + compact.lstrip("+0") if international or region is None else compact, region)
    except phonenumbers.NumberParseException:
        return "is not a phone number"
    country = phonenumbers.region_code_for_country_code(parsed.country_code or 0)
    where = f"+{parsed.country_code} ({country})" if country != "ZZ" else f"+{parsed.country_code}"
    reason = phonenumbers.is_possible_number_with_reason(parsed)
    names = {getattr(phonenumbers.ValidationResult, n): n for n in dir(phonenumbers.ValidationResult) if n.isupper()}
    why = _REASONS.get(names.get(reason, ""), f"no {country} number has this length and prefix")
    assumed = f"; {region} was assumed from the connection's country_code" if region and not international else ""
    return f"is not a valid {where} number: {why}{assumed}"


def split_recipients(value: str | int | Iterable[Any] | None) -> list[str]:
    """Turn a list, tuple or comma/semicolon/newline-separated string of numbers into a list of strings."""
    if value is None:
        return []
    if isinstance(value, (str, int)):
        return [part.strip() for part in re.split(r"[,;\n]", str(value)) if part.strip()]
    out: list[str] = []
    for item in value:
        out.extend(split_recipients(item))
    return out


def prepare_recipients(
    value: str | int | Iterable[Any] | None,
    default_region: str | None = None,
) -> tuple[list[str], list[dict[str, str]]]:
    """Normalize and de-duplicate recipients.

    :return: ``(numbers, rejected)``: unique E.164 numbers in first-seen order, and one
        ``{"to", "code": "invalid_number", "reason"}`` entry per input that is not a valid number.
    """
    numbers: list[str] = []
    seen: set[str] = set()
    rejected: list[dict[str, str]] = []
    for raw in split_recipients(value):
        try:
            number = normalize_number(raw, default_region)
        except SmsInvalidNumberError as err:
            rejected.append({"to": raw, "code": err.code, "reason": err.message})
            continue
        if number not in seen:
            seen.add(number)
            numbers.append(number)
    return numbers, rejected


class SentNumbers:
    """Which of a batch's E.164 numbers a provider's answer names, in whatever form it wrote it.

    Providers echo numbers as sent (``+61400000001``), as international digits (``61400000001``), in
    national form (``400000001``, ``0400000001``) or wrapped in quotes and brackets; ``find`` maps each
    back to the number of the batch, or None when the answer names a number that was not sent.
    """

    _JUNK = re.compile(r"[\s\"'\[\]()\-.]")

    def __init__(self, batch: Iterable[str], region: str | None = None) -> None:
        self._region = region
        prefix = f"+{_calling_code(region)}" if region else None
        self._index: dict[str, str] = {}
        for number in batch:
            self._index[number] = self._index[number[1:]] = number
            if prefix and number.startswith(prefix):
                national = number[len(prefix) :]
                self._index[national] = self._index["0" + national] = number

    def find(self, written: Any) -> str | None:
        cleaned = self._JUNK.sub("", str(written or ""))
        if not cleaned:
            return None
        if cleaned in self._index:
            return self._index[cleaned]
        try:
            number = normalize_number(cleaned, self._region)
        except SmsValidationError:
            return None
        return number if number in self._index else None


@lru_cache(maxsize=256)
def _calling_code(region: str) -> int:
    import phonenumbers

    return int(phonenumbers.country_code_for_region(region))


def mask_number(number: str) -> str:
    """A number shortened for logs (``+614*****001``): enough to recognize, not enough to dial."""
    if len(number) <= 7:
        return number[:2] + "*" * max(len(number) - 2, 0)
    return number[:4] + "*" * (len(number) - 7) + number[-3:]
