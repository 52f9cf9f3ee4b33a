"""The sandbox's Starlette application: provider routes, the control API and the conversations page.

Control API (JSON), for tests and demos:
``GET /_sandbox/messages`` (sent and received, filter by ``provider``/``phone``),
``POST /_sandbox/inbound`` (``{"provider", "from", "text", "received_at"?}``: a phone replies; or
``{"messages": [...]}`` for many at once),
``POST /_sandbox/faults`` (a ``Fault`` rule) and ``DELETE /_sandbox/faults``,
``GET``/``POST /_sandbox/settings`` (``unsubscribed``, ``registered_senders``, ``balance``, ``tokens``,
``cellcast_rate_limit``; see ``apply_settings``; the answer echoes every setting),
``POST /_sandbox/delivery`` (``sent_after``, ``final_after`` seconds and ``outcomes``: number ->
``delivered``/``failed``/``expired``/``rejected``/``unsubscribed``; see ``sandbox.delivery``),
``GET``/``POST /_sandbox/webhooks`` (URLs the sandbox calls with replies and delivery reports; see
``sandbox.webhooks``), ``GET /_sandbox/stats`` and ``POST /_sandbox/reset``. ``GET /`` shows the
conversations, each message with the delivery status its provider would report, and a form to reply
as the recipient through any provider (``GET /_sandbox/conversations`` is the part it refreshes;
``GET /_sandbox/media/{id}`` an MMS image; ``GET /favicon.ico`` its icon).

Two guards keep a web page open in the same browser from driving the sandbox: the control API takes
only ``Content-Type: application/json`` bodies (a cross-site form cannot send one), and every request
must name a loopback ``Host`` (so a DNS-rebound name is refused), unless the sandbox was bound to a
non-loopback address on purpose.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from airflow_provider_sms.core.errors import SmsValidationError
from airflow_provider_sms.core.http import is_loopback_host
from airflow_provider_sms.core.phone import normalize_number
from airflow_provider_sms.sandbox.faults import Fault, FaultMiddleware, Faults
from airflow_provider_sms.sandbox.page import render_conversations, render_page
from airflow_provider_sms.sandbox.providers.cellcast import Cellcast
from airflow_provider_sms.sandbox.providers.clickatell import Clickatell
from airflow_provider_sms.sandbox.providers.cloudware import Cloudware
from airflow_provider_sms.sandbox.store import Store, stamp
from airflow_provider_sms.sandbox.webhooks import WebhookPusher

PROVIDERS = ("cellcast", "clickatell", "cloudware")
# A speech bubble, so a browser's request for the icon finds one instead of a 404.
FAVICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><path fill="#1b6fb5" '
    b'd="M2 2h12a1 1 0 0 1 1 1v7a1 1 0 0 1-1 1H7l-4 3v-3H2a1 1 0 0 1-1-1V3a1 1 0 0 1 1-1z"/></svg>'
)


def reset_sandbox(store: Store, faults: Faults, webhooks: WebhookPusher | None = None) -> None:
    """Forget every message, setting, fault, webhook and statistic: the state of a fresh sandbox."""
    store.reset()
    faults.clear()
    faults.reset_stats()
    if webhooks is not None:
        webhooks.reset()


def _refuse_non_json(request: Request) -> Response | None:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        return JSONResponse({"error": "the control API takes Content-Type: application/json"}, status_code=415)
    return None


async def json_body(request: Request) -> dict[str, Any] | Response:
    """The JSON object a control call sent, or the 415/400 answer to give instead."""
    if (refused := _refuse_non_json(request)) is not None:
        return refused
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return JSONResponse({"error": "send a JSON object"}, status_code=400)
    return body


class LoopbackHostOnly:
    """Answer 421 to any request whose ``Host`` is not a loopback name (DNS rebinding)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
            if not is_loopback_host(name.strip("[]") or None):
                response = JSONResponse({"error": f"Host {host!r} is not a loopback name"}, status_code=421)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def describe_settings(current: Any) -> dict[str, Any]:
    """The account settings as ``POST /_sandbox/settings`` takes them (null: no limit / anything goes)."""
    return {
        "unsubscribed": sorted(current.unsubscribed),
        "registered_senders": None if current.registered_senders is None else sorted(current.registered_senders),
        "balance": current.balance,
        "tokens": None if current.tokens is None else sorted(current.tokens),
        "cellcast_rate_limit": current.cellcast_rate_limit,
    }


def apply_settings(current: Any, body: dict[str, Any]) -> None:
    """Apply a ``POST /_sandbox/settings`` body, checking every value first (nothing changes on an error).

    ``unsubscribed``: numbers that opted out; ``registered_senders``: the sender IDs the account may use
    (null: any well-formed one); ``balance``: SMS parts left (null: unlimited); ``tokens``: the accepted
    tokens (null: any token; [] refuses every token); ``cellcast_rate_limit``: Cellcast calls a second
    (null: off).
    """
    known = {"unsubscribed", "registered_senders", "balance", "tokens", "cellcast_rate_limit"}
    unknown = set(body) - known
    if unknown:
        raise ValueError(
            f"unknown setting(s) {', '.join(sorted(unknown))}; the settings are {', '.join(sorted(known))}"
        )

    def strings(name: str, nullable: bool) -> Any:
        value = body[name]
        if value is None and nullable:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{name} must be a list of strings{' or null' if nullable else ''}")
        return value

    def count(name: str) -> int | None:
        value = body[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"{name} must be a whole number >= 0 or null")
        return value

    changes: dict[str, Any] = {}
    if "unsubscribed" in body:
        changes["unsubscribed"] = {normalize_number(n, "AU") for n in strings("unsubscribed", False)}
    if "registered_senders" in body:
        senders = strings("registered_senders", True)
        changes["registered_senders"] = None if senders is None else set(senders)
    if "tokens" in body:
        tokens = strings("tokens", True)
        changes["tokens"] = None if tokens is None else set(tokens)
    for name in ("balance", "cellcast_rate_limit"):
        if name in body:
            changes[name] = count(name)
    for name, value in changes.items():
        setattr(current, name, value)


def create_app(
    store: Store, faults: Faults | None = None, *, loopback_only: bool = True, webhooks: WebhookPusher | None = None
) -> Any:
    """Build the ASGI app over ``store``; ``faults`` holds the injected faults and the stats, ``webhooks``
    the URLs the sandbox calls.

    :param loopback_only: refuse requests whose ``Host`` is not a loopback name; turn off only when
        serving on another address on purpose.
    """
    faults = faults or Faults()
    pusher = webhooks or WebhookPusher(store)
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
        plan = store.settings.delivery
        for row in rows:
            row["status"] = plan.status(row)
        return JSONResponse({"messages": rows})

    async def add_inbound(request: Request) -> Response:
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        many = body.get("messages")
        items = many if isinstance(many, list) else [body]
        try:
            rows = [
                inject(
                    str(item.get("provider", "")),
                    str(item.get("from", "")),
                    str(item.get("text", "")),
                    item.get("received_at"),
                )
                for item in items
            ]
        except (SmsValidationError, ValueError, AttributeError) as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        return JSONResponse({"messages": rows} if isinstance(many, list) else rows[0], status_code=201)

    async def add_fault(request: Request) -> Response:
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        names = {f.name for f in dataclasses.fields(Fault)}
        try:
            fault = Fault(**{k: v for k, v in body.items() if k in names})
        except TypeError as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        faults.add(fault)
        return JSONResponse(dataclasses.asdict(fault), status_code=201)

    async def clear_faults(request: Request) -> Response:
        if (refused := _refuse_non_json(request)) is not None:
            return refused
        faults.clear()
        return JSONResponse({"faults": []})

    async def settings(request: Request) -> Response:
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        try:
            apply_settings(store.settings, body)
        except (SmsValidationError, ValueError, TypeError) as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        return JSONResponse(describe_settings(store.settings))

    async def show_settings(request: Request) -> Response:
        return JSONResponse(describe_settings(store.settings))

    async def delivery(request: Request) -> Response:
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        plan = store.settings.delivery
        try:
            plan.update(body)
        except (ValueError, TypeError, AttributeError, SmsValidationError) as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        return JSONResponse(dataclasses.asdict(plan))

    async def show_webhooks(request: Request) -> Response:
        return JSONResponse(pusher.describe())

    async def set_webhooks(request: Request) -> Response:
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        try:
            pusher.configure(
                str(body.get("provider", "")), body.get("inbound"), body.get("status"), str(body.get("method", "POST"))
            )
        except ValueError as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        return JSONResponse(pusher.describe())

    async def stats(request: Request) -> Response:
        return JSONResponse({**faults.stats(), "stored_messages": store.count()})

    async def reset(request: Request) -> Response:
        if (refused := _refuse_non_json(request)) is not None:
            return refused
        reset_sandbox(store, faults, pusher)
        return JSONResponse({"reset": True})

    def conversations_html() -> str:
        plan = store.settings.delivery
        rows = [{**row, "status": plan.reported(row)} for row in store.all()]
        clickatell = pusher.targets.get("clickatell")
        # Clickatell has no inbound API: a reply to its number reaches Airflow only through its callback
        unread = () if clickatell is not None and clickatell.inbound else ("clickatell",)
        return render_conversations(rows, stamp(), PROVIDERS, frozenset(store.media), unread)

    async def page(request: Request) -> Response:
        return HTMLResponse(render_page(conversations_html()))

    async def conversations(request: Request) -> Response:
        return HTMLResponse(conversations_html())

    async def favicon(request: Request) -> Response:
        return Response(FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    async def media(request: Request) -> Response:
        found = store.media.get(request.path_params["message_id"])
        if found is None:
            return JSONResponse({"error": "no image for this message"}, status_code=404)
        return Response(found[1], media_type=found[0])

    routes = [
        Route("/api/v1/gateway", cellcast.gateway, methods=["POST"]),
        Route("/api/v1/chat", cellcast.chat, methods=["POST"]),
        Route("/api/v1/gatewaymms", cellcast.mms, methods=["POST"]),
        Route("/api/v1/apiClient/getResponses", cellcast.responses, methods=["GET"]),
        Route("/api/v2/report/message", cellcast.report_list, methods=["GET"]),
        Route("/api/v2/report/message/{message_id}", cellcast.report, methods=["GET"]),
        Route("/messages", clickatell.messages, methods=["POST"]),
        Route("/messages/http/send", clickatell.http_send, methods=["GET", "POST"]),
        Route("/v1/sms/send", cloudware.send, methods=["POST"]),
        Route("/v1/sms/queue", cloudware.queue, methods=["POST"]),
        Route("/v1/sms/messages", cloudware.messages, methods=["GET"]),
        Route("/_sandbox/messages", list_messages, methods=["GET"]),
        Route("/_sandbox/inbound", add_inbound, methods=["POST"]),
        Route("/_sandbox/faults", add_fault, methods=["POST"]),
        Route("/_sandbox/faults", clear_faults, methods=["DELETE"]),
        Route("/_sandbox/settings", settings, methods=["POST"]),
        Route("/_sandbox/settings", show_settings, methods=["GET"]),
        Route("/_sandbox/conversations", conversations, methods=["GET"]),
        Route("/_sandbox/media/{message_id}", media, methods=["GET"]),
        Route("/_sandbox/delivery", delivery, methods=["POST"]),
        Route("/_sandbox/webhooks", show_webhooks, methods=["GET"]),
        Route("/_sandbox/webhooks", set_webhooks, methods=["POST"]),
        Route("/_sandbox/stats", stats, methods=["GET"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        Route("/", page, methods=["GET"]),
        Route("/favicon.ico", favicon, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.store = store
    app.state.faults = faults
    app.state.webhooks = pusher
    guarded = FaultMiddleware(app, faults)
    return LoopbackHostOnly(guarded) if loopback_only else guarded
