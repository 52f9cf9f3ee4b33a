"""Record what a webhook call brought as Airflow asset events, each once (runs in the API server).

Replies go to ``inbound_sms_asset(conn_id)`` with ``{"message": InboundMessage.to_dict()}`` in the
event's ``extra``; delivery reports go to ``sms_status_asset(conn_id)`` with
``{"report": DeliveryReport.to_dict()}``. Both also carry ``conn_id``, ``message_id`` and a
``dedupe_key``, which is how a provider retrying a call (or calling twice, as Clickatell warns it may)
is recognised: an event with the same key on the same asset within ``DEDUPE_WINDOW`` means the call
was already recorded. A report that is not final arriving after a final one for the same message (an
out-of-order callback) is acknowledged and dropped, so ``sent`` never follows ``delivered``.

Events are written through Airflow's own ``asset_manager.register_asset_change``, the call the REST API
uses, so DAGs scheduled on these assets run as for any other asset event. An asset exists once a DAG
refers to it; a call for an asset no DAG uses is acknowledged, logged and not recorded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_sms.assets import INBOUND, STATUS, asset_uri
from airflow_provider_sms.core.results import FINAL_STATUSES, DeliveryReport, InboundMessage

log = logging.getLogger(__name__)

DEDUPE_WINDOW = timedelta(days=2)  # providers retry failed calls for hours, not days


@dataclass
class Recorded:
    """What became of the items of one call."""

    recorded: int = 0
    duplicates: int = 0  # already recorded (a retried or repeated call)
    superseded: int = 0  # a report older than one already recorded
    unscheduled: int = 0  # no DAG uses the asset: acknowledged, not recorded

    def to_dict(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if v}


@dataclass(frozen=True)
class _Item:
    kind: str
    message_id: str
    dedupe_key: str
    status: str | None
    extra: dict[str, Any]


def _items(conn_id: str, messages: Iterable[InboundMessage], reports: Iterable[DeliveryReport]) -> list[_Item]:
    items = []
    for message in messages:
        key = f"{INBOUND}:{message.message_id}"
        extra = {"conn_id": conn_id, "message_id": message.message_id, "dedupe_key": key}
        items.append(_Item(INBOUND, message.message_id, key, None, {**extra, "message": message.to_dict()}))
    for report in reports:
        key = f"{STATUS}:{report.message_id}:{report.provider_status or report.status}"
        extra = {"conn_id": conn_id, "message_id": report.message_id, "dedupe_key": key, "status": report.status}
        items.append(_Item(STATUS, report.message_id, key, report.status, {**extra, "report": report.to_dict()}))
    return items


class AssetRecorder:
    """Writes asset events for webhook calls; one call at a time per API server worker, so a provider's
    retry racing its first attempt in the same worker is still seen as a duplicate."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._warned: dict[str, datetime] = {}

    def record(self, conn_id: str, messages: Iterable[InboundMessage], reports: Iterable[DeliveryReport]) -> Recorded:
        from airflow.utils.session import create_session

        items = _items(conn_id, messages, reports)
        outcome = Recorded()
        if not items:
            return outcome
        with self._lock, create_session() as session:
            assets: dict[str, Any] = {}
            for item in items:
                if item.kind not in assets:
                    assets[item.kind] = self._asset(session, asset_uri(conn_id, item.kind))
                asset = assets[item.kind]
                if asset is None:
                    outcome.unscheduled += 1
                    self._warn_unscheduled(asset_uri(conn_id, item.kind))
                    continue
                seen = self._seen(session, asset.id, item.message_id)
                if item.dedupe_key in {extra.get("dedupe_key") for extra in seen}:
                    outcome.duplicates += 1
                elif item.status not in (None, *FINAL_STATUSES) and any(
                    extra.get("status") in FINAL_STATUSES for extra in seen
                ):
                    outcome.superseded += 1
                else:
                    self._register(session, asset, item.extra)
                    outcome.recorded += 1
        return outcome

    @staticmethod
    def _asset(session: Any, uri: str) -> Any:
        from airflow.models.asset import AssetModel
        from sqlalchemy import select

        return session.scalars(select(AssetModel).where(AssetModel.uri == uri).order_by(AssetModel.id)).first()

    @staticmethod
    def _seen(session: Any, asset_id: int, message_id: str) -> list[dict[str, Any]]:
        """The extras of events recorded for this message on this asset within the window."""
        from airflow.models.asset import AssetEvent
        from sqlalchemy import select

        since = datetime.now(timezone.utc) - DEDUPE_WINDOW
        query = select(AssetEvent.extra).where(
            AssetEvent.asset_id == asset_id,
            AssetEvent.timestamp >= since,
            AssetEvent.extra["message_id"].as_string() == message_id,
        )
        return [extra for extra in session.scalars(query) if isinstance(extra, dict)]

    @staticmethod
    def _register(session: Any, asset: Any, extra: dict[str, Any]) -> None:
        from airflow.assets.manager import asset_manager

        asset_manager.register_asset_change(asset=asset, extra=extra, source_is_api=True, session=session)
        session.flush()

    def _warn_unscheduled(self, uri: str) -> None:
        now = datetime.now(timezone.utc)
        last = self._warned.get(uri)
        if last is None or now - last > timedelta(minutes=10):
            self._warned[uri] = now
            log.warning(
                "SMS webhook: no DAG refers to %s, so the call was acknowledged and nothing recorded; "
                "schedule a DAG on it to receive these events",
                uri,
            )
