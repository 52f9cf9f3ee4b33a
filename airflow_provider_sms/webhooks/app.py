"""The FastAPI app the plugin mounts at ``/sms/webhooks`` on the Airflow API server.

Routes (register the full URL, secret included, with the provider):

- ``POST /sms/webhooks/<conn_id>/inbound?secret=...``: replies (Cellcast Receive URL, Clickatell reply
  callback, Cloudware webhook);
- ``POST /sms/webhooks/<conn_id>/status?secret=...``: delivery reports (Cellcast Status URL, Clickatell
  status callback, Cloudware webhook), and ``GET`` for Clickatell's query-parameter form.

Either route records whatever the call holds (a Cloudware webhook URL receives both kinds). A call is
refused, with nothing recorded, when: the secret is missing or wrong, the connection is unknown or has
no ``webhook_secret`` (all three: 404, the same answer as a path that does not exist); the body is over
64 KiB (413); a POST is not ``application/json`` (415); the body is not JSON (400); the body can never be
recorded, however often it is sent (JSON nested deeper than any provider's, text that is not valid
Unicode, a payload the provider's parser cannot read: 422 with a short reason, logged once, numbers
masked). An accepted call answers 200 with counts. Only a transient fault (the metadata database or a
secrets backend unreachable, a deadlock) answers 503 with ``Retry-After``, so the provider calls again;
nothing of that call was recorded. Log lines never hold a whole phone number or any message text.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from airflow_provider_sms.webhooks.receiver import (
    CONN_ID,
    MAX_BODY,
    NOT_FOUND,
    Hooks,
    Refused,
    Transient,
    Unrecordable,
    authorized_hook,
    presented_secret,
    read_json,
    warn_connections_without_secret,
)

log = logging.getLogger(__name__)

RETRY_AFTER = "5"  # seconds: a database restart or fail-over takes a few


def stored_id(hook: Any, conn_id: str) -> str:
    """The connection's id as its backend stores it: a database whose collation ignores case (MySQL's
    default) finds ``Cloudware_Default`` for ``cloudware_default``, and its events belong to the latter."""
    stored = getattr(getattr(hook, "connection", None), "conn_id", None)
    return stored if isinstance(stored, str) and stored.lower() == conn_id.lower() else conn_id


def _masked_senders(messages: Any, reports: Any) -> str:
    """The numbers an unrecordable call concerns, masked, for its one log line."""
    from airflow_provider_sms.core.phone import mask_number

    numbers = [getattr(m, "from_number", "") for m in messages] + [getattr(r, "to", None) or "" for r in reports]
    shown = sorted({mask_number(str(n)) for n in numbers if n})[:5]
    return ", ".join(shown) or "no number"


def create_app(hooks: Hooks | None = None, recorder: Any = None) -> FastAPI:
    """Build the app; ``hooks`` and ``recorder`` (an ``AssetRecorder``) are replaceable for tests."""
    from airflow_provider_sms.webhooks.recorder import AssetRecorder

    if hooks is None:
        hooks = Hooks()
        try:
            warn_connections_without_secret()
        except Exception as err:  # a warning must not keep the API server from starting
            log.info("SMS webhooks: could not check connections for webhook secrets (%s)", type(err).__name__)
    recorder = recorder or AssetRecorder()
    app = FastAPI(title="SMS webhooks", docs_url=None, redoc_url=None, openapi_url=None)

    async def body_of(request: Request) -> bytes:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                raise Refused(413, "the body is too large")
        return body

    async def payload_of(request: Request) -> Any:
        if request.method == "GET":  # Clickatell's status callback as query parameters
            return {k: v for k, v in request.query_params.items() if k != "secret"}
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            raise Refused(415, "send Content-Type: application/json")
        return read_json(await body_of(request))

    async def receive(conn_id: str, request: Request) -> Response:
        messages: list[Any] = []
        reports: list[Any] = []
        try:
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_BODY:
                raise Refused(413, "the body is too large")
            if not CONN_ID.match(conn_id):
                raise NOT_FOUND
            secret = presented_secret(request.query_params.get("secret"), request.headers.get("authorization"))
            hook = await run_in_threadpool(authorized_hook, hooks, conn_id, secret)
            conn_id = stored_id(hook, conn_id)
            payload = await payload_of(request)
            try:
                messages, reports = hook.parse_webhook(payload)
            except Exception as err:  # the same body fails the same way every time
                log.debug("SMS webhook parse failure", exc_info=True)  # may show the body: DEBUG only
                raise Unrecordable(f"the body cannot be read as a {hook.hook_name} webhook") from err
            outcome = await run_in_threadpool(recorder.record, conn_id, messages, reports)
        except Unrecordable as refused:
            log.warning(
                "SMS webhook for %r refused (422, not recordable: %s); concerning %s",
                conn_id,
                refused.detail,
                _masked_senders(messages, reports),
            )
            return JSONResponse({"detail": refused.detail}, status_code=422)
        except Refused as refused:
            return JSONResponse({"detail": refused.detail}, status_code=refused.status)
        except Transient as err:
            log.warning("SMS webhook for %r not recorded (%s); answered 503, the provider will retry", conn_id, err)
            return JSONResponse(
                {"detail": "not recorded, try again"}, status_code=503, headers={"Retry-After": RETRY_AFTER}
            )
        except Exception as err:  # a bug or an unforeseen fault: its class only, never its text (it may hold data)
            log.error("SMS webhook for %r failed (%s); answered 500, nothing recorded", conn_id, type(err).__name__)
            return JSONResponse({"detail": "not recorded"}, status_code=500)
        if not messages and not reports:
            log.warning("SMS webhook for %r held nothing this provider's format describes", conn_id)
        return JSONResponse({"read": len(messages) + len(reports), **outcome.to_dict()})

    @app.post("/{conn_id}/inbound")
    async def inbound(conn_id: str, request: Request) -> Response:
        return await receive(conn_id, request)

    @app.api_route("/{conn_id}/status", methods=["GET", "POST"])
    async def status(conn_id: str, request: Request) -> Response:
        return await receive(conn_id, request)

    return app
