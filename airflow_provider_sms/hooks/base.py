"""What the three provider hooks share: the connection, the HTTP client, and the send pipeline.

A provider hook subclasses ``SmsHook``, declares its connection attributes and limits, and supplies
per send only a payload builder and an answer parser; ``deliver`` runs them through the one pipeline
of ``core.pipeline`` (validation, numbers, destination rule, batches, pool, pacing, result). Token
handling and base URL rules live here too, so a provider module holds nothing but its wire format.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_sms._compat import BaseHook
from airflow_provider_sms.connections import CONNECTION_TYPES, field_behaviour, form_widgets
from airflow_provider_sms.core.errors import (
    SmsAuthError,
    SmsError,
    SmsOptOutRegisterUnavailableError,
    SmsUnsupportedFeatureError,
    SmsValidationError,
)
from airflow_provider_sms.core.guard import DEFAULT_SEND_TIMEOUT, DEFAULT_THRESHOLD, SendGuard
from airflow_provider_sms.core.phone import normalize_number, region_for_country_code
from airflow_provider_sms.core.pipeline import Builder, DestinationRule, Parser, current_journal, prepare, run
from airflow_provider_sms.core.results import DeliveryReport, InboundMessage, SendResult, SentCheck
from airflow_provider_sms.core.safeguards import ConnectionRules, SendPolicy, screen, screen_opt_outs
from airflow_provider_sms.core.validation import DEFAULT_MAX_SEGMENTS, SendAt, validate_sender

if TYPE_CHECKING:
    from airflow_provider_sms.state.opt_outs import OptOutRegister

DEFAULT_READ_TIMEOUT = 30.0
MAX_READ_TIMEOUT = 600.0


class SmsHook(BaseHook):
    """Base class of the provider hooks.

    :param conn_id: the Airflow connection to use.
    :param batch_size: recipients per request for providers with a batch form; never above the
        provider's documented limit.
    :param max_workers: requests in flight at once (and connections kept alive).
    :param max_retries: retries after the first attempt, under the rules of ``core.http``.
    :param send_timeout: seconds one send may take in all, waits for retries included; recipients
        not yet tried by then are reported ``provider_unavailable`` (nothing sent to them).
    :param breaker_threshold: consecutive 429/503 answers after which a send stops retrying and
        reports the remaining recipients ``rate_limited`` without sending to them.
    :param max_parts: refuse a send (before any request) that needs more SMS parts than this, all
        recipients together.
    :param max_cost: refuse a send whose estimated cost, from the connection's ``prices``, is above this.
    :param smart_encoding: replace GSM-7 look-alikes (curly quotes, dashes, ellipsis, odd spaces) so
        the text goes as GSM-7; False sends exactly what was given.
    :param validity: how long the provider keeps trying to deliver (a ``timedelta``); only providers
        with a validity field take it (Clickatell), the others refuse it before sending.
    :param respect_opt_out: check every recipient against the opt-out register (``state.opt_outs``)
        before any request; those in it are reported ``unsubscribed`` and not texted. If the register
        cannot be read, the send fails (retryable) before any request. False sends to everyone: only
        for texts to your own staff (on-call alerts), never to customers.
    """

    conn_type: ClassVar[str]
    hook_name: ClassVar[str]  # "Cellcast SMS": the name Airflow lists, from the connection table
    provider: ClassVar[str]
    default_host: ClassVar[str]
    batch_limit: ClassVar[int] = 1
    default_workers: ClassVar[int] = 1
    default_country_code: ClassVar[str | None] = None
    max_segments: ClassVar[int] = DEFAULT_MAX_SEGMENTS
    requests_per_second: ClassVar[float | None] = None
    supports_send_at: ClassVar[bool] = True
    # The furthest delivery status this provider reports: Cloudware's reports stop at "sent".
    last_delivery_status: ClassVar[str] = "delivered"

    def __init__(
        self,
        conn_id: str,
        *,
        batch_size: int | None = None,
        max_workers: int | None = None,
        max_retries: int = 3,
        backoff_factor: float = 0.5,
        send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
        breaker_threshold: int = DEFAULT_THRESHOLD,
        max_parts: int | None = None,
        max_cost: float | None = None,
        smart_encoding: bool = True,
        validity: timedelta | None = None,
        respect_opt_out: bool = True,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.respect_opt_out = bool(respect_opt_out)
        self.policy = SendPolicy.of(
            max_parts=max_parts, max_cost=max_cost, smart_encoding=smart_encoding, validity=validity
        )
        if send_timeout is not None and not (math.isfinite(send_timeout) and send_timeout > 0):
            raise SmsValidationError(f"send_timeout must be a positive number of seconds, not {send_timeout!r}")
        if breaker_threshold < 1:
            raise SmsValidationError("breaker_threshold must be at least 1")
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
        self.send_timeout = send_timeout
        self.guard = SendGuard(breaker_threshold)

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
    def rules(self) -> ConnectionRules:
        """The connection's ``registered_senders``, ``allowed_countries`` and ``prices``, checked."""
        return ConnectionRules.from_extras(self._extra, self.conn_id)

    @cached_property
    def token(self) -> str:
        token = self.connection.password
        if not token:
            raise SmsAuthError(
                f"connection {self.conn_id!r} has no {self.credential}: put it in the connection's password field",
                provider=self.provider,
            )
        return str(token)

    @cached_property
    def default_sender(self) -> str | None:
        return validate_sender(self._extra("sender"))

    @cached_property
    def default_region(self) -> str | None:
        return region_for_country_code(self._extra("country_code") or self.default_country_code)

    @cached_property
    def opt_outs(self) -> OptOutRegister:
        """The opt-out register this hook checks and feeds (Airflow Variables, as this process reaches them)."""
        from airflow_provider_sms.state.opt_outs import OptOutRegister

        return OptOutRegister()

    def note_inbound(self, messages: Iterable[InboundMessage]) -> None:
        """Record the STOP and START replies among ``messages`` in the opt-out register (never raises)."""
        from airflow_provider_sms.state.opt_outs import note_inbound

        note_inbound(messages, self.conn_id, register=self.opt_outs)

    def note_reports(self, reports: Iterable[DeliveryReport]) -> None:
        """Record the recipients that delivery reports say opted out (never raises)."""
        from airflow_provider_sms.state.opt_outs import note_reports

        note_reports(reports, self.conn_id, register=self.opt_outs)

    def auth_headers(self) -> dict[str, str]:
        """The auth header in the provider's documented form (Bearer unless overridden)."""
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def credential(self) -> str:
        """What the connection form calls the secret ("API token", "API key", "Access token")."""
        return str(CONNECTION_TYPES[self.conn_type]["ui-field-behaviour"]["relabeling"]["password"])

    def _read_timeout(self) -> float:
        timeout = self._extra("timeout")
        if timeout is None:
            return DEFAULT_READ_TIMEOUT
        try:
            seconds = float(timeout)
        except (TypeError, ValueError):
            seconds = math.nan
        if not (math.isfinite(seconds) and 0 < seconds <= MAX_READ_TIMEOUT):
            raise SmsValidationError(
                f"connection {self.conn_id!r}: timeout {timeout!r} must be a number of seconds above 0 and at "
                f"most {MAX_READ_TIMEOUT:g}; nothing was sent"
            )
        return seconds

    @cached_property
    def client(self) -> Any:
        """The shared HTTP client (``core.http.SmsHttpClient``), built on first use.

        Everything about the connection is checked here, before any request: the base URL, the read
        timeout, and that the token can travel in a header.
        """
        from airflow_provider_sms.core.http import SmsHttpClient, resolve_base_url
        from airflow_provider_sms.core.pacing import RateLimiter

        conn = self.connection
        base_url = resolve_base_url(conn.host, self.default_host, schema=conn.schema, port=conn.port)
        host = (conn.host or "").strip()
        note = None
        if host and "://" not in host:
            note = (
                f"The connection's host {host!r} has no scheme, so {base_url} was tried; "
                f"if the server speaks plain http (the sandbox does), write http://{host}"
            )
        return SmsHttpClient(
            provider=self.provider,
            base_url=base_url,
            headers={"Accept": "application/json", **self.auth_headers()},
            secrets=[self.token],
            read_timeout=self._read_timeout(),
            max_retries=self.max_retries,
            backoff_factor=self.backoff_factor,
            pool_size=max(self.max_workers, 1),
            rate_limiter=RateLimiter(self.requests_per_second) if self.requests_per_second else None,
            guard=self.guard,
            credential=self.credential,
            host_note=note,
        )

    # --- sending ---------------------------------------------------------------------------------

    def send_sms(
        self,
        to: str | Iterable[Any],
        message: str,
        *,
        sender: str | None = None,
        send_at: SendAt = None,
        dry_run: bool = False,
    ) -> SendResult:
        """Send one plain SMS text to one or more recipients: the provider-neutral send.

        :param to: one number, a list, or a comma-separated string; any form ``phonenumbers`` reads.
        :param message: the text.
        :param sender: the sender ID; blank uses the connection's ``sender`` or the provider's default.
        :param send_at: when the provider should deliver: an aware datetime, an ISO-8601 string with an
            offset, or a ``timedelta`` from now. Naive and past times are refused.
        :param dry_run: send nothing; return what the send would do (``SendResult.dry_run``).
        """
        raise NotImplementedError

    def deliver(
        self,
        to: str | Iterable[Any],
        message: str,
        *,
        build: Builder,
        parse: Parser,
        sender: str | None = None,
        send_at: SendAt = None,
        region: str | None = None,
        destination: DestinationRule | None = None,
        check_text: bool = True,
        max_chars: int | None = None,
        dry_run: bool = False,
    ) -> SendResult:
        """Run the send pipeline with this connection: what every provider send method calls.

        :param build: the provider's payload builder for one batch.
        :param parse: the provider's answer parser for one batch.
        :param region: the region for national numbers; defaults to the connection's.
        :param destination: why the provider cannot send to a number (None when it can).
        :param check_text: apply the SMS length rules (not for MMS or binary content).
        :param max_chars: the text's length limit where the SMS rules do not apply.
        :param dry_run: everything but the network: same validation, rejections, batches and request
            count as a real send, and the same connection checks.
        """
        text = self.policy.text(message, sms=check_text)
        prepared = prepare(
            to,
            text.text,
            provider=self.provider,
            sender=sender,
            default_sender=self.default_sender,
            send_at=send_at,
            region=self.default_region if region is None else region,
            destination=destination,
            check_text=check_text,
            max_segments=self.max_segments,
            max_chars=max_chars,
        )
        if self.respect_opt_out:
            try:
                screen_opt_outs(prepared, lambda numbers: self.opt_outs.check(numbers, conn_id=self.conn_id))
            except SmsOptOutRegisterUnavailableError as err:  # fail closed: nobody is sent to
                for number in prepared.numbers:
                    prepared.result.add_rejected(number, err.code, "not sent: the opt-out register could not be read")
                prepared.result.dry_run = dry_run
                err.result = prepared.result.mark_connection(self.conn_id)
                raise
        held = set(prepared.result.unsubscribed)  # the register's; the provider may report more
        plan = screen(
            prepared,
            self.policy,
            self.rules,
            provider=self.provider,
            hook_name=self.hook_name,
            conn_id=self.conn_id,
            replaced=text.replaced,
            dry_run=dry_run,
        )
        if not prepared.numbers:  # everyone was refused before any request (opt-outs, allowed_countries, destination)
            prepared.result.dry_run = dry_run
            return prepared.result.mark_connection(self.conn_id)
        client = self.client  # built for a dry run too: the connection is checked the same way
        if not dry_run:
            self.guard.start(self.send_timeout)
        try:
            result = run(
                prepared,
                build,
                parse,
                batch_size=self.batch_size,
                transport=None if dry_run else client.send,
                max_workers=self.max_workers,
                redact=client.redact,
                journal=None if dry_run else current_journal(self.conn_id),
            )
        except SmsError as err:
            if err.result is not None:
                self._note_refused(err.result, held)
                err.result.mark_connection(self.conn_id)
            raise
        if not dry_run:
            self._note_refused(result, held)
        if dry_run and plan is not None:
            result.estimate = plan.to_dict()
        return result.mark_connection(self.conn_id)

    def _note_refused(self, result: SendResult, ours: set[str]) -> None:
        """Numbers the provider refused as opted out (not those the register held back) join the register."""
        reported = [n for n in result.unsubscribed if n not in ours]
        if reported:
            from airflow_provider_sms.state.opt_outs import note_unsubscribed

            note_unsubscribed(reported, self.conn_id, register=self.opt_outs)

    def number_or_raw(self, raw: str) -> str:
        """A number from a provider's answer in E.164, or as written when it is not a phone number."""
        try:
            return normalize_number(raw, self.default_region)
        except SmsValidationError:
            return raw

    def scrubbed(self, item: Any) -> Any:
        """A provider's item with the token redacted from every string value in it (an echoed token stops
        here); keys and structure are kept."""
        if isinstance(item, dict):
            return {key: self.scrubbed(value) for key, value in item.items()}
        if isinstance(item, list):
            return [self.scrubbed(value) for value in item]
        return self.redact(item) if isinstance(item, str) else item

    def redact(self, text: str) -> str:
        """``text`` with the connection's token replaced by ``***`` (no client or request needed)."""
        from airflow_provider_sms.core.http import redact

        return redact(text, [str(self.connection.password or "")])

    def iter_messages(
        self, *, since: datetime | str | None = None, stop_at: float | None = None, known: Collection[str] = ()
    ) -> Iterator[InboundMessage]:
        """Yield received messages, newest first, down to ``since`` (within ``core.listing``'s bounds)."""
        raise SmsUnsupportedFeatureError(
            f"{self.hook_name} has no API to list inbound messages; use a Cellcast or Cloudware connection",
            provider=self.provider,
        )

    def confirm_sent(self, numbers: Sequence[str], message: str, *, since: datetime) -> SentCheck | None:
        """Ask the provider which of ``numbers`` (E.164) it took ``message`` for at or after ``since``:
        how a retry settles recipients an earlier try left in doubt. None where the provider offers no
        way to ask (then they stay in doubt)."""
        return None

    def get_delivery_reports(self, message_ids: Iterable[str]) -> list[DeliveryReport]:
        """What became of sent messages, one ``DeliveryReport`` per id (``unknown`` where the provider
        does not say)."""
        raise SmsUnsupportedFeatureError(
            f"{self.hook_name} has no API to read delivery reports; register the status webhook "
            f"(/sms/webhooks/{self.conn_id}/status) and schedule a DAG on sms_status_asset({self.conn_id!r})",
            provider=self.provider,
        )

    def parse_webhook(self, payload: Any) -> tuple[list[InboundMessage], list[DeliveryReport]]:
        """The replies and delivery reports in one webhook call's payload, in our types.

        Unknown fields are ignored; an item that cannot be read is skipped.
        """
        raise SmsUnsupportedFeatureError(f"{self.hook_name} does not send webhooks", provider=self.provider)

    def number_or_none(self, raw: Any) -> str | None:
        """``number_or_raw`` of a provider's optional number field; None when it is missing or blank."""
        return self.number_or_raw(str(raw)) if raw else None

    def inbound_message(
        self, item: dict[str, Any], *, message_id: Any, sender: Any, receiver: Any, text: Any, received_at: datetime
    ) -> InboundMessage:
        """An ``InboundMessage`` from one provider item (already scrubbed) and the values its fields hold:
        numbers in E.164 where they are numbers, and an id derived from sender, time and text when the
        provider gives none."""
        from airflow_provider_sms.core.results import derive_message_id

        from_number = self.number_or_raw(str(sender or ""))
        body = str(text or "")
        return InboundMessage(
            provider=self.provider,
            message_id=str(message_id or "") or derive_message_id(from_number, received_at, body),
            from_number=from_number,
            to_number=self.number_or_none(receiver),
            text=body,
            received_at=received_at,
            raw=item,
        )

    def webhook_message(
        self, item: dict[str, Any], *, message_id: Any, sender: Any, receiver: Any, text: Any, received_at: Any
    ) -> InboundMessage:
        """``inbound_message`` for a webhook item, whose time may be missing or garbage: then it is now
        (a pushed reply has just arrived), flagged ``received_at_estimated``, and an id the provider did
        not give is derived from what a retry repeats (provider, sender, receiver, text), not from now."""
        import dataclasses
        import hashlib

        from airflow_provider_sms.core.timestamps import timestamp_or_none

        at = timestamp_or_none(received_at)
        if at is not None:
            return self.inbound_message(
                item, message_id=message_id, sender=sender, receiver=receiver, text=text, received_at=at
            )
        if not str(message_id or ""):
            parts = (self.provider, self.number_or_raw(str(sender or "")), str(receiver or ""), str(text or ""))
            digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
            message_id = f"derived-{digest[:24]}"
        message = self.inbound_message(
            item,
            message_id=message_id,
            sender=sender,
            receiver=receiver,
            text=text,
            received_at=datetime.now(timezone.utc),
        )
        return dataclasses.replace(message, received_at_estimated=True)

    @property
    def webhook_secret(self) -> str | None:
        """The secret every webhook call for this connection must carry (extra ``webhook_secret``)."""
        secret = self._extra("webhook_secret")
        return str(secret) if secret else None

    def check_lists_inbound(self) -> None:
        """Raise a clear error when this provider has no API to list inbound messages (Clickatell)."""
        if type(self).iter_messages is SmsHook.iter_messages:
            raise SmsValidationError(
                f"connection {self.conn_id!r} is {self.hook_name}, which has no API to list inbound "
                "messages; use a Cloudware or Cellcast connection",
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
