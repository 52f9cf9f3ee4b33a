"""The shared HTTP client every hook uses: one pooled session, timeouts, safe retries, error mapping.

Retries go through urllib3's ``Retry`` (no hand-written loops). A GET is retried on connect errors,
read errors and 429/500/502/503/504. A POST is retried only when it cannot have been processed: connect
errors, 429 and 503, honouring ``Retry-After`` (capped) with exponential backoff. A read timeout, a
dropped connection or any other 5xx after a POST raises ``SmsDeliveryUnknownError`` and is never
resent. Every other failure becomes the matching ``SmsError`` naming the provider, the endpoint and
the status, with a short excerpt of the body; the token is never part of any message.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.retry import Retry

from airflow_provider_sms.core.errors import (
    SmsAuthError,
    SmsDeliveryUnknownError,
    SmsError,
    SmsInsufficientCreditError,
    SmsProviderUnavailableError,
    SmsRateLimitedError,
    SmsRejectedError,
)
from airflow_provider_sms.core.pacing import RateLimiter
from airflow_provider_sms.core.pipeline import Call

log = logging.getLogger(__name__)

GET_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
POST_RETRY_STATUSES = frozenset({429, 503})
_CREDIT_WORDS = re.compile(r"balance|credit|recharge|insufficient funds", re.IGNORECASE)
_EXCERPT_CHARS = 200


class SmsRetry(Retry):
    """urllib3 ``Retry`` that retries a POST only on 429 and 503 (answers that mean "not processed").

    Connect errors are retried for every method by urllib3 itself; read errors only for the methods in
    ``allowed_methods``, which does not include POST.
    """

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if method and method.upper() == "POST":
            return bool(self.total) and status_code in POST_RETRY_STATUSES
        return super().is_retry(method, status_code, has_retry_after)


def build_retry(max_retries: int, backoff_factor: float, retry_after_max: int = 60) -> SmsRetry:
    """The retry policy of this module (see its docstring) with ``max_retries`` attempts after the first."""
    kwargs: dict[str, Any] = {
        "total": max_retries,
        "connect": max_retries,
        "read": max_retries,
        "status": max_retries,
        "other": 0,
        "allowed_methods": frozenset({"GET", "HEAD", "OPTIONS"}),
        "status_forcelist": GET_RETRY_STATUSES,
        "backoff_factor": backoff_factor,
        "backoff_max": 30,
        "raise_on_status": False,
        "raise_on_redirect": True,
        "respect_retry_after_header": True,
    }
    if "retry_after_max" in inspect.signature(Retry.__init__).parameters:
        kwargs["retry_after_max"] = retry_after_max
    return SmsRetry(**kwargs)


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
    network in clear text.
    """
    raw = (host or "").strip() or default
    if "://" not in raw:
        raw = f"{schema or 'https'}://{raw}"
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SmsError(f"connection host {raw!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise SmsError(
            f"refusing plain http:// for {parts.hostname}: the token would travel unencrypted. "
            "Use https:// (plain http is only allowed for loopback hosts such as the sandbox)"
        )
    netloc = parts.netloc
    if port and parts.port is None:
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
    snippet = re.sub(r"\s+", " ", snippet)
    for secret in secrets:
        if secret:
            snippet = snippet.replace(secret, "***")
    return snippet[:_EXCERPT_CHARS] + ("…" if len(snippet) > _EXCERPT_CHARS else "")


def _looks_like_html(text: str, content_type: str) -> bool:
    return "html" in content_type.lower() or text.lstrip().lower().startswith(("<!doctype html", "<html"))


class SmsHttpClient:
    """One pooled, retrying ``requests.Session`` bound to a provider's base URL and credentials.

    :param provider: name used in errors and logs.
    :param base_url: scheme, host and optional path prefix; relative paths are joined to it, and
        absolute URLs (such as a ``next_page`` link) must stay on the same origin.
    :param headers: default headers, the auth header among them; they are never logged.
    :param secrets: strings scrubbed from any error text (the token).
    :param pool_size: connections kept alive; also the most requests in flight at once.
    :param rate_limiter: paces every request across all threads sharing this client.
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
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self._secrets = tuple(s for s in secrets if s)
        self._rate_limiter = rate_limiter
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": "airflow-provider-sms", **headers})
        adapter = HTTPAdapter(
            pool_connections=1,
            pool_maxsize=pool_size,
            pool_block=True,
            max_retries=build_retry(max_retries, backoff_factor),
        )
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self._origin = urlsplit(self.base_url)[:2]

    def close(self) -> None:
        self.session.close()

    def url_for(self, path_or_url: str) -> str:
        if "://" not in path_or_url:
            return f"{self.base_url}/{path_or_url.lstrip('/')}"
        url = urljoin(self.base_url + "/", path_or_url)
        if urlsplit(url)[:2] != self._origin:
            raise SmsError(
                f"refusing to follow {urlsplit(url).scheme}://{urlsplit(url).netloc}: it is not the "
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
        if self._rate_limiter is not None:
            self._rate_limiter.acquire()
        started = time.monotonic()
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
            error = self._transport_error(method, endpoint, exc)
            error.attempts = 1
            raise error from None
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
        if not text.strip():
            raise unknown(
                f"answered with an empty body where JSON was expected.{consequence}",
                provider=self.provider,
                endpoint=endpoint,
                status=status,
            )
        if _looks_like_html(text, headers.get("Content-Type", "")):
            raise unknown(
                f"answered with an HTML page, not JSON (a proxy or maintenance page?).{consequence}",
                provider=self.provider,
                endpoint=endpoint,
                status=status,
                body_excerpt=_excerpt(text, self._secrets),
            )
        try:
            return json.loads(text)
        except ValueError:
            raise unknown(
                f"answered with a body that is not JSON.{consequence}",
                provider=self.provider,
                endpoint=endpoint,
                status=status,
                body_excerpt=_excerpt(text, self._secrets),
            ) from None

    def _status_error(self, method: str, endpoint: str, status: int, text: str, headers: Mapping[str, str]) -> SmsError:
        excerpt = _excerpt(text, self._secrets) if text.strip() else None
        html = " with an HTML page" if text.strip() and _looks_like_html(text, headers.get("Content-Type", "")) else ""
        kwargs: dict[str, Any] = {
            "provider": self.provider,
            "endpoint": endpoint,
            "status": status,
            "body_excerpt": excerpt,
        }
        cls: type[SmsError]
        if status in (401, 403):
            cls = SmsAuthError
        elif status == 402 or (400 <= status < 500 and status != 429 and _CREDIT_WORDS.search(text or "")):
            cls = SmsInsufficientCreditError
        elif status == 429:
            cls = SmsRateLimitedError
        elif 400 <= status < 500:
            cls = SmsRejectedError
        elif method == "POST" and status != 503:
            cls = SmsDeliveryUnknownError
        else:
            cls = SmsProviderUnavailableError
        return cls(cls.advice + html, **kwargs)

    def _transport_error(self, method: str, endpoint: str, exc: requests.RequestException) -> SmsError:
        kwargs: dict[str, Any] = {"provider": self.provider, "endpoint": endpoint}
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        never_sent = isinstance(exc, (requests.ConnectTimeout, requests.exceptions.SSLError)) or isinstance(
            reason, (NewConnectionError, ConnectTimeoutError)
        )
        kind = type(exc).__name__
        if never_sent or method != "POST":
            return SmsProviderUnavailableError(
                f"could not reach the provider after retries ({kind}); nothing was sent", **kwargs
            )
        if isinstance(exc, requests.ReadTimeout):
            what = f"no answer within {self.timeout[1]:g}s"
        else:
            what = f"the connection dropped before an answer ({kind})"
        return SmsDeliveryUnknownError(
            f"{what}; the message may have been sent, so it is not resent automatically. "
            "Check the provider's dashboard before sending again",
            **kwargs,
        )
