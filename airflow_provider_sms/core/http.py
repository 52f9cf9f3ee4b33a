"""The shared HTTP client every hook uses: one pooled session, timeouts, safe retries, error mapping.

Retries go through urllib3's ``Retry`` (no hand-written loops). A GET is retried on connect errors,
read errors and 429/500/502/503/504. A POST is retried only when it cannot have been processed:
connect errors, 429 and 503, with exponential backoff, honouring ``Retry-After`` up to
``RETRY_AFTER_MAX`` seconds (a longer wait, or one past the send's deadline, is not waited for: the
429 stands), and never once the send's ``SendGuard`` says stop (circuit breaker, deadline).

Failures are classified by what actually happened, so "may have been sent" is only said when it is
true:

- nothing left this machine (an unusable URL or header, a refused or timed-out connection, a failed
  TLS handshake, a breaker already open): not processed, safe to retry or fail over;
- an answer came: by its status (401/403 auth, 402 or the provider's credit words credit, 429 rate
  limited, other 4xx rejected, 503 unavailable; other 5xx after a POST delivery unknown);
- the request went out and no complete answer came back (read timeout, dropped connection): a POST
  raises ``SmsDeliveryUnknownError`` and is never resent.

Every error names the provider, the host and the endpoint, with a short excerpt of the answer from
which the token is redacted; retries are logged as one short line each by this module's logger.
"""

from __future__ import annotations

import email.utils
import inspect
import json
import logging
import math
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError, ResponseError
from urllib3.util.retry import Retry

from airflow_provider_sms.core.errors import (
    SmsAuthError,
    SmsDeliveryUnknownError,
    SmsError,
    SmsProviderUnavailableError,
    SmsValidationError,
    refusal_class,
)
from airflow_provider_sms.core.guard import SendGuard
from airflow_provider_sms.core.pacing import RateLimiter
from airflow_provider_sms.core.pipeline import Call

log = logging.getLogger(__name__)

GET_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
POST_RETRY_STATUSES = frozenset({429, 503})
RETRY_AFTER_MAX = 30  # seconds: a provider asking for longer is not waited for
_EXCERPT_CHARS = 200
_UNSAFE_HEADER_CHARS = re.compile(r"[\x00-\x1f\x7f]")

# The attempts of the request running on this thread, kept by SmsRetry.increment: when a request
# ends in an exception, urllib3's retry history is otherwise lost, and SendResult.requests must
# count every attempt that went out.
_attempts = threading.local()


class SmsRetry(Retry):
    """urllib3 ``Retry`` with this provider's rules for POSTs, ``Retry-After`` and the send guard.

    :param guard: the send's circuit breaker and deadline; POSTs are not retried once it says stop.
    :param label: the provider's name, for the one-line retry log.
    """

    def __init__(self, *args: Any, guard: SendGuard | None = None, label: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = guard
        self.label = label

    def new(self, **kw: Any) -> SmsRetry:
        kw.setdefault("guard", self.guard)
        kw.setdefault("label", self.label)
        return super().new(**kw)

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if (method or "").upper() != "POST":
            return super().is_retry(method, status_code, has_retry_after)
        if self.guard is not None:
            self.guard.record(status_code)
            if self.guard.refusal() is not None:
                return False
        return bool(self.total) and status_code in POST_RETRY_STATUSES

    def get_retry_after(self, response: Any) -> float | None:
        """The wait the answer asks for, capped; garbage (``soon-ish``, ``-5``) falls back to backoff."""
        asked = requested_wait(response.headers.get("Retry-After"))
        return None if asked is None else min(asked, RETRY_AFTER_MAX)

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> SmsRetry:
        if response is not None and error is None:
            asked = requested_wait(response.headers.get("Retry-After"))
            limit: float = RETRY_AFTER_MAX
            left = self.guard.remaining() if self.guard is not None else None
            if left is not None:
                limit = min(limit, left)
            if asked is not None and asked > limit:
                log.warning(
                    "%s: the provider asks to wait %gs before a retry; not waiting that long", self.label, asked
                )
                raise MaxRetryError(_pool, url or "", ResponseError(f"Retry-After {asked:g}s is too long"))
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        _attempts.history = new.history
        why = f"HTTP {response.status}" if response is not None else type(error).__name__
        log.warning("%s %s %s: %s; retry %d", self.label, method, urlsplit(url or "").path, why, len(new.history))
        return new


def requested_wait(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds, decimals, or an HTTP date); None if
    it is absent, negative or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        parsed = email.utils.parsedate_tz(text)
        if parsed is None:
            return None
        seconds = email.utils.mktime_tz(parsed) - time.time()
        return max(seconds, 0.0)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class _QuietUrllib3Retries(logging.Filter):
    """Drop urllib3's verbose ``Retrying (SmsRetry(...))`` warnings: SmsRetry logs one short line."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (args and isinstance(args[0], SmsRetry))


logging.getLogger("urllib3.connectionpool").addFilter(_QuietUrllib3Retries())


def build_retry(
    max_retries: int, backoff_factor: float, *, guard: SendGuard | None = None, label: str = ""
) -> SmsRetry:
    """The retry policy of this module (see its docstring) with ``max_retries`` attempts after the first."""
    options: dict[str, Any] = {}
    if "retry_after_max" in inspect.signature(Retry.__init__).parameters:  # urllib3 >= 2.5
        options["retry_after_max"] = RETRY_AFTER_MAX
    return SmsRetry(
        total=max_retries,
        connect=max_retries,
        read=max_retries,
        status=max_retries,
        other=0,
        allowed_methods=frozenset({"GET", "HEAD", "OPTIONS"}),
        status_forcelist=GET_RETRY_STATUSES,
        backoff_factor=backoff_factor,
        backoff_max=RETRY_AFTER_MAX,
        raise_on_status=False,
        raise_on_redirect=True,
        respect_retry_after_header=True,
        guard=guard,
        label=label,
        **options,
    )


def is_loopback_host(hostname: str | None) -> bool:
    import ipaddress

    if not hostname:
        return False
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_base_url(host: str | None, default: str, *, schema: str | None = None, port: int | None = None) -> str:
    """The base URL for a connection: its host (with scheme and port) or the provider's default.

    ``http://`` is refused unless the host is loopback (the sandbox), so a token never crosses the
    network in clear text; so are other schemes, credentials in the URL, and hosts that are not hosts.

    :raises SmsValidationError: the host cannot be used (nothing is sent).
    """
    raw = (host or "").strip() or default
    if "://" not in raw and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:(?!\d)", raw):
        raise SmsValidationError(f"connection host {raw!r} is not an http(s) URL; give https://host[:port]")
    if "://" not in raw:
        raw = f"{schema or 'https'}://{raw}"
    try:
        parts = urlsplit(raw)
        given_port = parts.port
    except ValueError as err:
        raise SmsValidationError(f"connection host {raw!r} is not a usable URL ({err})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SmsValidationError(f"connection host {raw!r} is not an http(s) URL; give https://host[:port]")
    if "@" in parts.netloc:
        raise SmsValidationError("connection host must not hold credentials; put the token in the password field")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise SmsValidationError(
            f"refusing plain http:// for {parts.hostname}: the token would travel unencrypted. "
            "Use https:// (plain http is only allowed for loopback hosts such as the sandbox)"
        )
    netloc = parts.netloc
    if port and given_port is None:
        netloc = f"{netloc}:{port}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


@dataclass
class HttpReply:
    """A successful (2xx) answer: status, parsed body (JSON) or text, and the attempts it took."""

    status: int
    body: Any
    text: str
    attempts: int
    endpoint: str


MIN_SECRET_CHARS = 6  # shorter "secrets" (a test token like "t") would shred ordinary text, not protect it


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (of at least ``MIN_SECRET_CHARS`` characters) replaced by ``***``."""
    for secret in secrets:
        if len(secret) >= MIN_SECRET_CHARS:
            text = text.replace(secret, "***")
    return text


def _excerpt(text: str, secrets: Iterable[str]) -> str:
    """A short, single-line, secret-free excerpt of a response body."""
    snippet = text.strip()
    title = re.search(r"<title[^>]*>(.*?)</title>", snippet, re.IGNORECASE | re.DOTALL)
    if title:
        snippet = f"HTML page titled {title.group(1).strip()!r}"
    elif snippet.lower().startswith(("<!doctype html", "<html")):
        snippet = "an HTML page"
    else:
        try:
            data = json.loads(snippet)
        except ValueError:
            data = None
        if isinstance(data, dict):
            picked = {
                k: data[k]
                for k in ("message", "error", "errorCode", "errorDescription", "code", "status")
                if data.get(k) not in (None, "", {}, [])
            }
            if picked:
                snippet = json.dumps(picked, ensure_ascii=False)
    snippet = redact(re.sub(r"\s+", " ", snippet), secrets)
    return snippet[:_EXCERPT_CHARS] + ("…" if len(snippet) > _EXCERPT_CHARS else "")


def _looks_like_html(text: str, content_type: str) -> bool:
    return "html" in content_type.lower() or text.lstrip().lower().startswith(("<!doctype html", "<html"))


def check_header(name: str, value: str, *, provider: str, credential: str) -> None:
    """Refuse a header value that cannot travel as given (line breaks, control characters, stray spaces).

    :raises SmsAuthError: for the auth header, naming the connection field to fix.
    :raises SmsValidationError: for any other header.
    """
    problem = None
    if _UNSAFE_HEADER_CHARS.search(value):
        problem = "holds a line break or another control character"
    elif value != value.strip():
        problem = "starts or ends with spaces"
    else:
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            problem = "holds characters an HTTP header cannot carry"
    if problem is None:
        return
    if name.lower() == "authorization":
        raise SmsAuthError(
            f"the connection's {credential} {problem} (often a copy-paste slip); fix the password field. "
            "Nothing was sent",
            provider=provider,
        )
    raise SmsValidationError(f"the {name} header {problem}; nothing was sent", provider=provider)


class SmsHttpClient:
    """One pooled, retrying ``requests.Session`` bound to a provider's base URL and credentials.

    :param provider: name used in errors and logs.
    :param base_url: scheme, host and optional path prefix; relative paths are joined to it, and
        absolute URLs (such as a ``next_page`` link) must stay on the same origin.
    :param headers: default headers, the auth header among them; checked here, never logged.
    :param secrets: strings redacted from any error text (the token).
    :param pool_size: connections kept alive; also the most requests in flight at once.
    :param rate_limiter: paces every request across all threads sharing this client.
    :param guard: the circuit breaker and deadline POSTs obey (``SendGuard.start`` arms it per send).
    :param credential: what the connection calls its secret ("API token", "API key"), for error text.
    :param host_note: appended to "could not reach" errors (e.g. that the host was given without a scheme).
    """

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        headers: Mapping[str, str],
        secrets: Iterable[str] = (),
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        max_retries: int = 3,
        backoff_factor: float = 0.5,
        pool_size: int = 10,
        rate_limiter: RateLimiter | None = None,
        guard: SendGuard | None = None,
        credential: str = "API token",
        host_note: str | None = None,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.credential = credential
        self.host_note = host_note
        self.guard = guard
        self._secrets = tuple(s for s in secrets if s)
        self._rate_limiter = rate_limiter
        all_headers = {"User-Agent": "airflow-provider-sms", **headers}
        for name, value in all_headers.items():
            check_header(name, value, provider=provider, credential=credential)
        self.session = requests.Session()
        self.session.headers.update(all_headers)
        adapter = HTTPAdapter(
            pool_connections=1,
            pool_maxsize=pool_size,
            pool_block=True,
            max_retries=build_retry(max_retries, backoff_factor, guard=guard, label=provider),
        )
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        base = urlsplit(self.base_url)
        self._origin = (base.scheme, base.netloc)
        self.host = base.netloc

    def close(self) -> None:
        self.session.close()

    def redact(self, text: str) -> str:
        """``text`` with this client's secrets replaced by ``***``."""
        return redact(text, self._secrets)

    def url_for(self, path_or_url: str) -> str:
        if "://" not in path_or_url:
            return f"{self.base_url}/{path_or_url.lstrip('/')}"
        url = urljoin(self.base_url + "/", path_or_url)
        target = urlsplit(url)
        if (target.scheme, target.netloc) != self._origin:
            raise SmsError(
                f"refusing to follow {target.scheme}://{target.netloc}: it is not the "
                f"connection's host, and the token must not be sent elsewhere",
                provider=self.provider,
            )
        return url

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        json_body: Any = None,
        data: Any = None,
        files: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        expect: str = "json",
    ) -> HttpReply:
        """Send one request and return its 2xx answer, or raise the matching ``SmsError``.

        :param expect: ``json`` (parse the body, refusing HTML or garbage) or ``text``.
        """
        method = method.upper()
        url = self.url_for(path_or_url)
        endpoint = f"{method} {urlsplit(url).path}"
        if method == "POST" and self.guard is not None:
            refusal = self.guard.refusal(provider=self.provider, endpoint=endpoint)
            if refusal is not None:
                raise refusal
        if self._rate_limiter is not None:
            self._rate_limiter.acquire()
        started = time.monotonic()
        _attempts.history = ()
        try:
            response = self.session.request(
                method,
                url,
                json=json_body,
                data=data,
                files=files,
                params=params,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise self._transport_error(method, endpoint, exc) from None
        attempts = 1 + len(getattr(getattr(response.raw, "retries", None), "history", ()) or ())
        log.debug(
            "%s %s -> HTTP %s in %.3fs (%d attempt(s))",
            self.provider,
            endpoint,
            response.status_code,
            time.monotonic() - started,
            attempts,
        )
        text = response.text
        try:
            if not 200 <= response.status_code < 300:
                raise self._status_error(method, endpoint, response.status_code, text, response.headers)
            body: Any = text
            if expect == "json":
                body = self._parse_json(method, endpoint, response.status_code, text, response.headers)
        except SmsError as error:
            error.attempts = attempts
            raise
        return HttpReply(response.status_code, body, text, attempts, endpoint)

    def send(self, call: Call) -> HttpReply:
        """Send one ``Call`` built by a provider's payload builder (the send pipeline's transport)."""
        return self.request(
            call.method,
            call.path,
            json_body=call.json,
            data=call.data,
            files=call.files,
            headers=call.headers,
            expect=call.expect,
        )

    def _parse_json(self, method: str, endpoint: str, status: int, text: str, headers: Mapping[str, str]) -> Any:
        unknown = SmsDeliveryUnknownError if method == "POST" else SmsProviderUnavailableError
        consequence = " The message may have been sent; it will not be resent." if method == "POST" else ""
        kwargs: dict[str, Any] = {"provider": self.provider, "endpoint": endpoint, "status": status}
        if not text.strip():
            raise unknown(f"answered with an empty body where JSON was expected.{consequence}", **kwargs)
        if _looks_like_html(text, headers.get("Content-Type", "")):
            raise unknown(
                f"answered with an HTML page, not JSON (a proxy or maintenance page?).{consequence}",
                body_excerpt=_excerpt(text, self._secrets),
                **kwargs,
            )
        try:
            return json.loads(text)
        except ValueError:
            raise unknown(
                f"answered with a body that is not JSON.{consequence}",
                body_excerpt=_excerpt(text, self._secrets),
                **kwargs,
            ) from None

    def _status_error(self, method: str, endpoint: str, status: int, text: str, headers: Mapping[str, str]) -> SmsError:
        html = " with an HTML page" if text.strip() and _looks_like_html(text, headers.get("Content-Type", "")) else ""
        cls: type[SmsError]
        if 400 <= status < 500:
            cls = refusal_class(text, status=status)
        elif method == "POST" and status != 503:
            cls = SmsDeliveryUnknownError
        else:
            cls = SmsProviderUnavailableError
        message = cls.advice
        if cls is SmsAuthError:
            message = f"{self.provider} refused the credentials; check the connection's {self.credential}"
        wait = headers.get("Retry-After")
        if status in POST_RETRY_STATUSES and wait:
            message += f" (it asked to wait {self.redact(wait)[:40]!r})"
        return cls(
            message + html,
            provider=self.provider,
            endpoint=endpoint,
            status=status,
            body_excerpt=_excerpt(text, self._secrets) if text.strip() else None,
        )

    def _transport_error(self, method: str, endpoint: str, exc: requests.RequestException) -> SmsError:
        attempts = 1 + len(getattr(_attempts, "history", ()))
        kwargs: dict[str, Any] = {"provider": self.provider, "endpoint": endpoint}
        kind = type(exc).__name__
        if isinstance(
            exc,
            (
                requests.exceptions.InvalidURL,
                requests.exceptions.InvalidSchema,
                requests.exceptions.MissingSchema,
                requests.exceptions.InvalidHeader,
                requests.exceptions.URLRequired,
            ),
        ):
            return SmsValidationError(f"the request could not be built ({kind}); nothing was sent", **kwargs)
        reason = exc.args[0] if exc.args else None
        inner = getattr(reason, "reason", reason)
        never_sent = isinstance(exc, (requests.ConnectTimeout, requests.exceptions.SSLError)) or isinstance(
            inner, (NewConnectionError, ConnectTimeoutError)
        )
        if never_sent:
            what = "nothing was sent" if method == "POST" else "nothing was read"
            note = f". {self.host_note}" if self.host_note else ""
            return SmsProviderUnavailableError(
                f"could not reach {self.host} after {attempts} attempt(s) ({kind}); {what}{note}",
                attempts=attempts,
                **kwargs,
            )
        if method != "POST":
            return SmsProviderUnavailableError(
                f"no complete answer from {self.host} after {attempts} attempt(s) ({kind})",
                attempts=attempts,
                **kwargs,
            )
        if isinstance(exc, requests.ReadTimeout):
            what = f"{self.host} sent no answer within {self.timeout[1]:g}s"
        else:
            what = f"the connection to {self.host} dropped before a complete answer ({kind})"
        return SmsDeliveryUnknownError(
            f"{what}; the message may have been sent, so it is not resent automatically. "
            "Check the provider's dashboard before sending again",
            attempts=attempts,
            **kwargs,
        )
