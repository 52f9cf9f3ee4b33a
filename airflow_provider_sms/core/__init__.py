"""The provider-independent core: numbers, encoding, validation, result and error types, HTTP, batching.

Nothing here imports Airflow. The names below are light to import; ``core.http`` (requests) and
``phonenumbers`` load only when a hook runs.
"""

from __future__ import annotations

from airflow_provider_sms.core.encoding import SegmentInfo, count_segments
from airflow_provider_sms.core.errors import (
    SmsAuthError,
    SmsDeliveryUnknownError,
    SmsError,
    SmsInsufficientCreditError,
    SmsProviderUnavailableError,
    SmsRateLimitedError,
    SmsRejectedError,
    SmsUnsupportedFeatureError,
    SmsValidationError,
)
from airflow_provider_sms.core.phone import normalize_number, prepare_recipients, split_recipients
from airflow_provider_sms.core.results import InboundMessage, SendResult

__all__ = [
    "InboundMessage",
    "SegmentInfo",
    "SendResult",
    "SmsAuthError",
    "SmsDeliveryUnknownError",
    "SmsError",
    "SmsInsufficientCreditError",
    "SmsProviderUnavailableError",
    "SmsRateLimitedError",
    "SmsRejectedError",
    "SmsUnsupportedFeatureError",
    "SmsValidationError",
    "count_segments",
    "normalize_number",
    "prepare_recipients",
    "split_recipients",
]
