"""The FastAPI app the plugin mounts at ``/sms/webhooks`` on the Airflow API server.

Routes (register the full URL, secret included, with the provider):

- ``POST /sms/webhooks/<conn_id>/inbound?secret=...``: replies (Cellcast Receive URL, Clickatell reply
  callback, Cloudware webhook);
- ``POST /sms/webhooks/<conn_id>/status?secret=...``: delivery reports (Cellcast Status URL, Clickatell
  status callback, Cloudware webhook), and ``GET`` for Clickatell's query-parameter form.

Either route records whatever the call holds (a Cloudware webhook URL receives both kinds). A call is
refused, with nothing recorded, when: the secret is missing or wrong, the connection is unknown or has
no ``webhook_secret`` (all three: 404, the same answer as a path that does not exist); the body is over
64 KiB (413); a POST is not ``application/json`` (415); the body is not JSON (400). An accepted call
answers 200 with counts; if the metadata database cannot be written, 503, so the provider retries.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from airflow_provider_sms.webhooks.receiver import (
    MAX_BODY,
    Hooks,
    Refused,
    authorized_hook,
    presented_secret,
    read_json,
)

log = logging.getLogger(__name__)


def create_app(hooks: Hooks | None = None, recorder: Any = None) -> FastAPI:
    """Build the app; ``hooks`` and ``recorder`` (an ``AssetRecorder``) are replaceable for tests."""
    from airflow_provider_sms.webhooks.recorder import AssetRecorder

    hooks = hooks or Hooks()
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
        try:
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_BODY:
                raise Refused(413, "the body is too large")
            secret = presented_secret(request.query_params.get("secret"), request.headers.get("authorization"))
            hook = await run_in_threadpool(authorized_hook, hooks, conn_id, secret)
            payload = await payload_of(request)
            messages, reports = hook.parse_webhook(payload)
            outcome = await run_in_threadpool(recorder.record, conn_id, messages, reports)
        except Refused as refused:
            return JSONResponse({"detail": refused.detail}, status_code=refused.status)
        except Exception as err:  # the metadata database, most likely: ask the provider to call again
            log.error("SMS webhook for %r could not be recorded (%s); the provider will retry", conn_id, err)
            return JSONResponse({"detail": "not recorded, try again"}, status_code=503)
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
