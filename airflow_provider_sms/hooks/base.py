"""What the three provider hooks share: connection reading, the HTTP client, and send preparation.

A provider hook subclasses ``SmsHook``, declares its connection attributes and limits, maps requests
to its wire format and answers back to ``SendResult``/``InboundMessage``. Everything else (token
handling, base URL rules, validation, number normalization, batching, pacing) lives here or in
``core``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from functools import cached_property
from typing import Any, ClassVar

from airflow_provider_sms._compat import BaseHook
from airflow_provider_sms.connections import field_behaviour, form_widgets
from airflow_provider_sms.core.encoding import SegmentInfo
from airflow_provider_sms.core.errors import SmsAuthError, SmsError, SmsUnsupportedFeatureError, SmsValidationError
from airflow_provider_sms.core.phone import prepare_recipients, region_for_country_code
from airflow_provider_sms.core.results import InboundMessage, SendResult
from airflow_provider_sms.core.validation import DEFAULT_MAX_SEGMENTS, validate_message, validate_sender


class SmsHook(BaseHook):
    """Base class of the provider hooks.

    :param conn_id: the Airflow connection to use.
    :param batch_size: recipients per request for providers with a batch form; never above the
        provider's documented limit.
    :param max_workers: requests in flight at once (and connections kept alive).
    :param max_retries: retries after the first attempt, under the rules of ``core.http``.
    """

    conn_type: ClassVar[str]
    hook_name: ClassVar[str]
    provider: ClassVar[str]
    default_host: ClassVar[str]
    batch_limit: ClassVar[int] = 1
    default_workers: ClassVar[int] = 1
    default_country_code: ClassVar[str | None] = None
    max_segments: ClassVar[int] = DEFAULT_MAX_SEGMENTS
    requests_per_second: ClassVar[float | None] = None

    def __init__(
        self,
        conn_id: str,
        *,
        batch_size: int | None = None,
        max_workers: int | None = None,
        max_retries: int = 3,
        backoff_factor: float = 0.5,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        if batch_size is not None and not 1 <= batch_size <= self.batch_limit:
            raise SmsValidationError(
                f"batch_size {batch_size} is outside 1..{self.batch_limit}, {self.hook_name}'s documented limit"
            )
        if max_workers is not None and max_workers < 1:
            raise SmsValidationError("max_workers must be at least 1")
        self.batch_size = batch_size or self.batch_limit
        self.max_workers = max_workers or self.default_workers
        self.max_retries = max_retries
        self.backoff_factor = backoff_factor

    # --- connection -------------------------------------------------------------------------------

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        return form_widgets(cls.conn_type)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return field_behaviour(cls.conn_type)

    @cached_property
    def connection(self) -> Any:
        return self.get_connection(self.conn_id)

    @cached_property
    def extras(self) -> dict[str, Any]:
        return dict(self.connection.extra_dejson or {})

    def _extra(self, name: str) -> Any:
        """An extra field, accepting the ``extra__<type>__name`` form older UIs wrote."""
        value = self.extras.get(name, self.extras.get(f"extra__{self.conn_type}__{name}"))
        return None if value == "" else value

    @cached_property
    def token(self) -> str:
        token = self.connection.password
        if not token:
            raise SmsAuthError(
                f"connection {self.conn_id!r} has no token: put the {self.hook_name} API token in its password field",
                provider=self.provider,
            )
        return str(token)

    @cached_property
    def default_sender(self) -> str | None:
        return validate_sender(self._extra("sender"))

    @cached_property
    def default_region(self) -> str | None:
        return region_for_country_code(self._extra("country_code") or self.default_country_code)

    def auth_headers(self) -> dict[str, str]:
        """The auth header in the provider's documented form (Bearer unless overridden)."""
        return {"Authorization": f"Bearer {self.token}"}

    def classify_error(self, status: int, payload: Any, text: str) -> type[SmsError] | None:
        """Map a provider-specific error answer to an error class; None keeps the generic mapping."""
        return None

    @cached_property
    def client(self) -> Any:
        """The shared HTTP client (``core.http.SmsHttpClient``), built on first use."""
        from airflow_provider_sms.core.http import SmsHttpClient, resolve_base_url
        from airflow_provider_sms.core.pacing import RateLimiter

        conn = self.connection
        timeout = self._extra("timeout")
        try:
            read_timeout = float(timeout) if timeout is not None else 30.0
        except (TypeError, ValueError):
            raise SmsValidationError(f"connection {self.conn_id!r}: timeout {timeout!r} is not a number") from None
        return SmsHttpClient(
            provider=self.provider,
            base_url=resolve_base_url(conn.host, self.default_host, schema=conn.schema, port=conn.port),
            headers={"Accept": "application/json", **self.auth_headers()},
            secrets=[self.token],
            read_timeout=read_timeout,
            max_retries=self.max_retries,
            backoff_factor=self.backoff_factor,
            pool_size=max(self.max_workers, 1),
            rate_limiter=RateLimiter(self.requests_per_second) if self.requests_per_second else None,
            classify=self.classify_error,
        )

    # --- sending ----------------------------------------------------------------------------------

    def prepare_send(
        self,
        to: str | Iterable[Any],
        message: str,
        sender: str | None,
        *,
        region: str | None = None,
        check_text: bool = True,
    ) -> tuple[list[str], SendResult, str | None, SegmentInfo | None]:
        """Validate everything before a request: text, sender, recipients.

        :return: ``(numbers, result, sender, segments)``: unique E.164 numbers to send to, a result
            already holding the invalid inputs as rejected, the sender to use, the text's segments.
        :raises SmsValidationError: empty or too long text, bad sender, or no valid recipient.
        """
        info = validate_message(message, max_segments=self.max_segments) if check_text else None
        chosen_sender = validate_sender(sender) if sender not in (None, "") else self.default_sender
        numbers, rejected = prepare_recipients(to, region if region is not None else self.default_region)
        if not numbers:
            detail = "; ".join(f"{r['to']}: {r['reason']}" for r in rejected[:5]) or "none was given"
            raise SmsValidationError(f"no valid recipient ({detail})", provider=self.provider)
        result = SendResult(self.provider, rejected=list(rejected))
        return numbers, result, chosen_sender, info

    def send_sms(self, to: str | Iterable[Any], message: str, *, sender: str | None = None) -> SendResult:
        """Send one plain SMS text to one or more recipients (the provider-neutral send)."""
        raise NotImplementedError

    def iter_messages(self, *, since: datetime | str | None = None) -> Iterator[InboundMessage]:
        """Yield received messages, newest first, down to ``since``."""
        raise SmsUnsupportedFeatureError(
            f"{self.hook_name} has no API to list inbound messages; use a Cellcast or Cloudware connection",
            provider=self.provider,
        )

    def test_connection(self) -> tuple[bool, str]:
        """Make one cheap authenticated call and report whether the credentials work."""
        try:
            self.check_credentials()
        except SmsError as err:
            return False, str(err)
        return True, f"Connected to {self.hook_name}: the token was accepted."

    def check_credentials(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Close the pooled connections, if any were opened."""
        client = self.__dict__.get("client")
        if client is not None:
            client.close()
