"""The provider-independent core: numbers, encoding, validation, results, errors, HTTP, the send pipeline.

Nothing here imports Airflow. The names below load on first use (PEP 562), so importing one error
class at DAG-parse time does not import the rest; ``core.http`` (requests) and ``phonenumbers`` load
only when a hook runs.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "SegmentInfo": "encoding",
    "count_segments": "encoding",
    "smart_encode": "encoding",
    "SmsAuthError": "errors",
    "SmsCountryNotAllowedError": "errors",
    "SmsDeliveryUnknownError": "errors",
    "SmsError": "errors",
    "SmsInsufficientCreditError": "errors",
    "SmsInvalidNumberError": "errors",
    "SmsProviderUnavailableError": "errors",
    "SmsRateLimitedError": "errors",
    "SmsRejectedError": "errors",
    "SmsUnsupportedDestinationError": "errors",
    "SmsUnsupportedFeatureError": "errors",
    "SmsValidationError": "errors",
    "normalize_number": "phone",
    "prepare_recipients": "phone",
    "split_recipients": "phone",
    "DeliveryReport": "results",
    "InboundMessage": "results",
    "SendResult": "results",
}

if TYPE_CHECKING:
    from airflow_provider_sms.core.encoding import SegmentInfo, count_segments, smart_encode
    from airflow_provider_sms.core.errors import (
        SmsAuthError,
        SmsCountryNotAllowedError,
        SmsDeliveryUnknownError,
        SmsError,
        SmsInsufficientCreditError,
        SmsInvalidNumberError,
        SmsProviderUnavailableError,
        SmsRateLimitedError,
        SmsRejectedError,
        SmsUnsupportedDestinationError,
        SmsUnsupportedFeatureError,
        SmsValidationError,
    )
    from airflow_provider_sms.core.phone import normalize_number, prepare_recipients, split_recipients
    from airflow_provider_sms.core.results import DeliveryReport, InboundMessage, SendResult


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DeliveryReport",
    "InboundMessage",
    "SegmentInfo",
    "SendResult",
    "SmsAuthError",
    "SmsCountryNotAllowedError",
    "SmsDeliveryUnknownError",
    "SmsError",
    "SmsInsufficientCreditError",
    "SmsInvalidNumberError",
    "SmsProviderUnavailableError",
    "SmsRateLimitedError",
    "SmsRejectedError",
    "SmsUnsupportedDestinationError",
    "SmsUnsupportedFeatureError",
    "SmsValidationError",
    "count_segments",
    "normalize_number",
    "prepare_recipients",
    "smart_encode",
    "split_recipients",
]
