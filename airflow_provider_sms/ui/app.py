"""The SMS page's FastAPI app, mounted by the plugin at ``/sms/ui`` on the Airflow API server (3.1+).

``GET /`` is the page (``static/index.html``: plain HTML and JavaScript, no build step), which Airflow's
UI shows under its own navigation (an external view at ``/plugin/sms``). Its data comes from JSON
routes under ``/api``, authenticated exactly as Airflow's own API (``get_user``: a bearer token, or the
token cookie the UI holds) and authorized by Airflow's auth manager:

- reading anything needs the right to view DAGs, and shows only the DAGs the user may read;
- changing the opt-out register (``POST /api/opt-outs``, ``POST /api/opt-outs/remove``) needs the
  right to edit Variables (where the register lives), takes JSON only (a cross-site form cannot send
  it), and writes one entry in Airflow's audit log (``Log``, event ``sms.opt_out.add``/``.remove``,
  the user and the number masked) in the same transaction as the change.

Every list is bounded server-side (a page of sends, the newest replies), so a page loads in well under
a second with 10,000 sends in the ledgers.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any

from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from airflow_provider_sms.ui import data

PAGE = Path(__file__).with_name("static") / "index.html"


class Reader:
    """The signed-in user, and the DAGs they may read (None: every DAG)."""

    def __init__(self, user: Any, dag_ids: set[str] | None, can_edit: bool) -> None:
        self.user = user
        self.dag_ids = dag_ids
        self.can_edit = can_edit

    @property
    def name(self) -> str:
        return str(self.user.get_name())


def _auth_manager() -> Any:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager()


def _may_edit(user: Any) -> bool:
    return bool(_auth_manager().is_authorized_variable(method="PUT", user=user))


def reader(user: GetUserDep) -> Reader:
    """FastAPI dependency: 401 without a valid token, 403 without the right to view DAGs."""
    manager = _auth_manager()
    if not manager.is_authorized_dag(method="GET", user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")
    dag_ids = set(manager.get_authorized_dag_ids(user=user, method="GET"))
    return Reader(user, dag_ids, _may_edit(user))


def editor(request: Request, who: Annotated[Reader, Depends(reader)]) -> Reader:
    """FastAPI dependency: a reader who may also edit Variables, sending JSON (415 otherwise)."""
    if not who.can_edit:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden: changing opt-outs needs the right to edit Variables")
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send Content-Type: application/json")
    return who


Who = Annotated[Reader, Depends(reader)]
Editor = Annotated[Reader, Depends(editor)]


class NewOptOut(BaseModel):
    number: str
    reason: str | None = None


class RemovedOptOut(BaseModel):
    id: str
    reason: str | None = None


def _audit(session: Any, who: Reader, event: str, number: str, reason: str | None) -> None:
    from airflow.models.log import Log

    from airflow_provider_sms.core.phone import mask_number

    extra = {"number": mask_number(number), **({"reason": reason[:200]} if reason else {})}
    session.add(Log(event=event, owner=who.name, owner_display_name=who.name, extra=json.dumps(extra)))


def _warm_up() -> None:
    """Import what the routes read with while the API server starts, not during a user's first request."""
    import airflow.models.asset
    import airflow.models.log
    import airflow.models.renderedtifields
    import airflow.models.taskinstance
    import airflow.models.xcom  # noqa: F401

    import airflow_provider_sms.state.ledger_reads
    import airflow_provider_sms.state.opt_outs
    import airflow_provider_sms.state.webhook_receipts  # noqa: F401


def create_app() -> FastAPI:
    """Build the app (the plugin builds it once per API server process)."""
    _warm_up()
    app = FastAPI(title="SMS page", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"})

    @app.get("/api/me")
    def me(who: Who) -> dict[str, Any]:
        return {"user": who.name, "can_edit_opt_outs": who.can_edit}

    @app.get("/api/connections")
    def connections(who: Who, session: SessionDep) -> dict[str, Any]:
        return {"connections": data.connections(session)}

    @app.get("/api/outbox")
    def outbox(
        who: Who,
        session: SessionDep,
        conn_id: str | None = None,
        dag_id: str | None = None,
        status_: Annotated[str | None, Query(alias="status")] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 25,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        return data.outbox(
            session,
            dag_ids=who.dag_ids,
            conn_id=conn_id or None,
            dag_id=dag_id or None,
            status=status_ or None,
            limit=limit,
            offset=offset,
        )

    @app.get("/api/inbox")
    def inbox(who: Who, session: SessionDep, conn_id: str) -> dict[str, Any]:
        return data.inbox(session, dag_ids=who.dag_ids, conn_id=conn_id)

    @app.get("/api/spend")
    def spend(who: Who, session: SessionDep, conn_id: str | None = None) -> dict[str, Any]:
        return data.spend(session, dag_ids=who.dag_ids, conn_id=conn_id or None)

    @app.get("/api/opt-outs")
    def opt_outs(who: Who, session: SessionDep) -> dict[str, Any]:
        entries = data.opt_outs(session, with_ids=who.can_edit)
        return {"entries": entries, "audit": data.audit(session), "can_edit": who.can_edit}

    @app.post("/api/opt-outs")
    def add_opt_out(body: NewOptOut, who: Editor, session: SessionDep) -> dict[str, Any]:
        from airflow_provider_sms.core.errors import SmsValidationError
        from airflow_provider_sms.core.phone import mask_number, normalize_number

        try:
            number = normalize_number(body.number)
        except SmsValidationError as err:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"not a phone number in E.164 form: {err}") from None
        added = data.register(session).add(number, source=f"ui:{who.name}", by=who.name)
        if added:
            _audit(session, who, "sms.opt_out.add", number, body.reason)
        return {"number": mask_number(number), "added": added}

    @app.post("/api/opt-outs/remove")
    def remove_opt_out(body: RemovedOptOut, who: Editor, session: SessionDep) -> dict[str, Any]:
        from airflow_provider_sms.core.phone import mask_number

        entry = data.opt_out_by_id(session, body.id)
        if entry is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such opt-out")
        # The person removes the entry they see: as of a moment after it, even within its second.
        at = max(datetime.now(timezone.utc).replace(microsecond=0), entry.at + timedelta(seconds=1))
        removed = data.register(session).remove(entry.number, source=f"ui:{who.name}", by=who.name, at=at)
        if removed:
            _audit(session, who, "sms.opt_out.remove", entry.number, body.reason)
        return {"number": mask_number(entry.number), "removed": removed}

    return app
