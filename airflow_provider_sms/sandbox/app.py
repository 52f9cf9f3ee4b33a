"""The sandbox's Starlette application: provider routes, the control API and the conversations page.

Control API (JSON), for tests and demos:
``GET /_sandbox/messages`` (sent and received, filter by ``provider``/``phone``),
``POST /_sandbox/inbound`` (``{"provider", "from", "text", "received_at"?}``: a phone replies),
``POST /_sandbox/faults`` (a ``Fault`` rule) and ``DELETE /_sandbox/faults``,
``POST /_sandbox/settings`` (``unsubscribed``, ``registered_senders``, ``balance``, ``tokens``,
``cellcast_rate_limit``),
``GET /_sandbox/stats`` and ``POST /_sandbox/reset``. ``GET /`` shows the conversations with a form to
reply as the recipient.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from airflow_provider_sms.core.errors import SmsValidationError
from airflow_provider_sms.core.phone import normalize_number
from airflow_provider_sms.sandbox.faults import Fault, FaultMiddleware, Faults
from airflow_provider_sms.sandbox.page import render_page
from airflow_provider_sms.sandbox.providers.cellcast import Cellcast
from airflow_provider_sms.sandbox.providers.clickatell import Clickatell
from airflow_provider_sms.sandbox.providers.cloudware import Cloudware
from airflow_provider_sms.sandbox.store import Store, stamp

PROVIDERS = ("cellcast", "clickatell", "cloudware")


def reset_sandbox(store: Store, faults: Faults) -> None:
    """Forget every message, setting, fault and statistic: the state of a fresh sandbox."""
    store.reset()
    faults.clear()
    faults.reset_stats()


def create_app(store: Store, faults: Faults | None = None) -> Any:
    """Build the ASGI app over ``store``; ``faults`` holds the injected faults and the stats."""
    faults = faults or Faults()
    cellcast, clickatell, cloudware = Cellcast(store), Clickatell(store), Cloudware(store)

    def inject(provider: str, sender: str, text: str, received_at: str | None = None) -> dict[str, Any]:
        if provider not in PROVIDERS:
            raise SmsValidationError(f"provider must be one of {', '.join(PROVIDERS)}")
        if not text.strip():
            raise SmsValidationError("text is empty")
        moment = datetime.fromisoformat(received_at.replace("Z", "+00:00")) if received_at else None
        if moment is not None and moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return store.add_message(
            direction="in",
            provider=provider,
            phone=normalize_number(sender, "AU"),
            text=text,
            status="received",
            ts=stamp(moment) if moment else None,
        )

    async def list_messages(request: Request) -> Response:
        phone = request.query_params.get("phone")
        rows = store.all(
            provider=request.query_params.get("provider"), phone=normalize_number(phone, "AU") if phone else None
        )
        now = stamp()
        for row in rows:
            if row["status"] == "scheduled" and row["scheduled_for"] and row["scheduled_for"] <= now:
                row["status"] = "delivered"
        return JSONResponse({"messages": rows})

    async def add_inbound(request: Request) -> Response:
        body = await request.json()
        try:
            row = inject(
                str(body.get("provider", "")),
                str(body.get("from", "")),
                str(body.get("text", "")),
                body.get("received_at"),
            )
        except (SmsValidationError, ValueError) as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        return JSONResponse(row, status_code=201)

    async def add_fault(request: Request) -> Response:
        body = await request.json()
        names = {f.name for f in dataclasses.fields(Fault)}
        try:
            fault = Fault(**{k: v for k, v in body.items() if k in names})
        except TypeError as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        faults.add(fault)
        return JSONResponse(dataclasses.asdict(fault), status_code=201)

    async def clear_faults(request: Request) -> Response:
        faults.clear()
        return JSONResponse({"faults": []})

    async def settings(request: Request) -> Response:
        body = await request.json()
        current = store.settings
        if "unsubscribed" in body:
            current.unsubscribed = {normalize_number(n, "AU") for n in body["unsubscribed"] or []}
        if "registered_senders" in body:
            senders = body["registered_senders"]
            current.registered_senders = None if senders is None else set(senders)
        if "balance" in body:
            current.balance = body["balance"]
        if "cellcast_rate_limit" in body:
            current.cellcast_rate_limit = body["cellcast_rate_limit"]
        if "tokens" in body:
            current.tokens = None if body["tokens"] is None else set(body["tokens"])
        return JSONResponse({"unsubscribed": sorted(current.unsubscribed), "balance": current.balance})

    async def stats(request: Request) -> Response:
        return JSONResponse({**faults.stats(), "stored_messages": store.count()})

    async def reset(request: Request) -> Response:
        reset_sandbox(store, faults)
        return JSONResponse({"reset": True})

    async def page(request: Request) -> Response:
        return HTMLResponse(render_page(store.all(), stamp()))

    async def reply(request: Request) -> Response:
        form = await request.form()
        try:
            inject(str(form.get("provider", "")), str(form.get("from", "")), str(form.get("text", "")))
        except (SmsValidationError, ValueError) as err:
            return HTMLResponse(f"<p>Could not add the reply: {err}</p><p><a href='/'>Back</a></p>", status_code=400)
        return RedirectResponse("/", status_code=303)

    routes = [
        Route("/api/v1/gateway", cellcast.gateway, methods=["POST"]),
        Route("/api/v1/chat", cellcast.chat, methods=["POST"]),
        Route("/api/v1/gatewaymms", cellcast.mms, methods=["POST"]),
        Route("/api/v1/apiClient/getResponses", cellcast.responses, methods=["GET"]),
        Route("/messages", clickatell.messages, methods=["POST"]),
        Route("/v1/sms/send", cloudware.send, methods=["POST"]),
        Route("/v1/sms/queue", cloudware.queue, methods=["POST"]),
        Route("/v1/sms/messages", cloudware.messages, methods=["GET"]),
        Route("/_sandbox/messages", list_messages, methods=["GET"]),
        Route("/_sandbox/inbound", add_inbound, methods=["POST"]),
        Route("/_sandbox/faults", add_fault, methods=["POST"]),
        Route("/_sandbox/faults", clear_faults, methods=["DELETE"]),
        Route("/_sandbox/settings", settings, methods=["POST"]),
        Route("/_sandbox/stats", stats, methods=["GET"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        Route("/_sandbox/reply", reply, methods=["POST"]),
        Route("/", page, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.store = store
    app.state.faults = faults
    return FaultMiddleware(app, faults)
