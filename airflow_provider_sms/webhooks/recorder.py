"""Record what a webhook call brought as Airflow asset events, each exactly once (runs in the API server).

Replies go to ``inbound_sms_asset(conn_id)`` with ``{"message": InboundMessage.to_dict()}`` in the
event's ``extra``; delivery reports go to ``sms_status_asset(conn_id)`` with
``{"report": DeliveryReport.to_dict()}``. Both also carry ``conn_id``, ``message_id`` and a
``dedupe_key``; a reply whose time the provider did not give (so it is the time it was received) also
carries ``received_at_estimated: true``.

Once is decided by the metadata database, not by this process: each item's receipt is claimed in
``state.webhook_receipts`` (a primary key on the item's kind and identity) in the same transaction as
its asset event, which Airflow's own ``asset_manager.register_asset_change`` writes (the call the REST
API uses, so DAGs scheduled on these assets run as for any other event). Two API server workers, or two
API servers, receiving the same item at once: one claims and records, the other waits on that row and
counts a duplicate. If the transaction fails, neither the receipt nor the event exists, and the
provider's retry records the item. An item's identity is the provider's message id (with the provider's
status word for a report); a reply the provider gave no id is identified by provider, sender, receiver,
text and the provider's time (none when it gave none), so a retry is recognised. A report that is not
final arriving after a final one for the same message (an out-of-order callback) is acknowledged and
dropped, so ``sent`` never follows ``delivered``. An asset exists once a DAG refers to it; a call for an
asset no DAG uses is acknowledged, logged and not recorded. STOP/START replies and opted-out delivery
reports also go to the opt-out register (``state.opt_outs``), in the same transaction, used asset or not.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_sms.assets import INBOUND, STATUS, asset_uri
from airflow_provider_sms.core.results import FINAL_STATUSES, DeliveryReport, InboundMessage
from airflow_provider_sms.webhooks.receiver import Transient, Unrecordable

log = logging.getLogger(__name__)

PRUNE_EVERY = 600.0  # seconds between one process's prunes of old receipts
ESTIMATED = "received_at_estimated"


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
    identity: tuple[str, ...]  # what makes the item itself: hashed into the receipt's key
    status: str | None
    extra: dict[str, Any]
    flags: str | None = None


def _items(conn_id: str, messages: Iterable[InboundMessage], reports: Iterable[DeliveryReport]) -> list[_Item]:
    items = []
    for message in messages:
        key = f"{INBOUND}:{message.message_id}"
        extra: dict[str, Any] = {"conn_id": conn_id, "message_id": message.message_id, "dedupe_key": key}
        if message.message_id.startswith("derived-"):  # no provider id: what a retry repeats
            when = "" if message.received_at_estimated else message.received_at.replace(microsecond=0).isoformat()
            identity: tuple[str, ...] = (
                "derived",
                message.provider,
                message.from_number,
                message.to_number or "",
                message.text,
                when,
            )
        else:
            identity = ("id", message.message_id)
        flags = ESTIMATED if message.received_at_estimated else None
        if flags:
            extra[ESTIMATED] = True
        items.append(_Item(INBOUND, message.message_id, identity, None, {**extra, "message": message.to_dict()}, flags))
    for report in reports:
        word = report.provider_status or report.status
        key = f"{STATUS}:{report.message_id}:{word}"
        extra = {"conn_id": conn_id, "message_id": report.message_id, "dedupe_key": key, "status": report.status}
        identity = ("id", report.message_id, word)
        items.append(_Item(STATUS, report.message_id, identity, report.status, {**extra, "report": report.to_dict()}))
    return items


def check_recordable(items: Iterable[_Item]) -> None:
    """Raise ``Unrecordable`` for an item the database could never store (checked before any write)."""
    for item in items:
        try:
            dumped = json.dumps(item.extra, ensure_ascii=False, allow_nan=False)
            dumped.encode("utf-8")
        except UnicodeEncodeError:
            raise Unrecordable(f"a {item.kind} item holds text that is not valid Unicode") from None
        except (ValueError, TypeError, RecursionError):
            raise Unrecordable(f"a {item.kind} item holds values JSON cannot carry") from None
        if "\\u0000" in dumped:  # Postgres text cannot hold NUL
            raise Unrecordable(f"a {item.kind} item holds a NUL character")


def _note_opt_outs(session: Any, conn_id: str, messages: list[InboundMessage], reports: list[DeliveryReport]) -> None:
    """STOP/START replies and opted-out reports go to the opt-out register in the call's transaction,
    whether or not a DAG uses the assets: a database fault fails the call (the provider sends it again,
    so no STOP is lost); any other failure is logged and the events are still recorded."""
    import sqlalchemy as sa

    from airflow_provider_sms.state import opt_outs
    from airflow_provider_sms.state.variables import VariableKeys

    if not any(opt_outs.opt_out_word(m.text) for m in messages) and not any(
        r.status == "unsubscribed" for r in reports
    ):
        return
    from airflow_provider_sms.state import webhook_receipts

    webhook_receipts.ensure(session)  # its own transaction: before this one writes anything (SQLite locks)
    register = opt_outs.OptOutRegister(VariableKeys(session))
    try:
        opt_outs.note_inbound(messages, conn_id, register=register, strict=True)
        opt_outs.note_reports(reports, conn_id, register=register, strict=True)
    except sa.exc.SQLAlchemyError:
        raise
    except Exception as err:
        log.warning("SMS webhook: the opt-out register was not updated (%s)", type(err).__name__)


@functools.cache
def _takes_callback_sink(register: Callable[..., Any]) -> bool:
    """Airflow 3.3's ``register_asset_change`` can hand its listener calls back to run after the commit."""
    import inspect

    return "callback_sink" in inspect.signature(register).parameters


class AssetRecorder:
    """Writes asset events for webhook calls; the database arbitrates duplicates (see the module doc)."""

    def __init__(self) -> None:
        self._warned: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._next_prune = 0.0

    def record(self, conn_id: str, messages: Iterable[InboundMessage], reports: Iterable[DeliveryReport]) -> Recorded:
        """Record one call's items in one transaction; raise ``Unrecordable`` (never recordable),
        ``Transient`` (the database failed: nothing was recorded) or the unexpected error."""
        import sqlalchemy as sa
        from airflow.utils.session import create_session

        from airflow_provider_sms.state import describe_fault, is_transient

        messages, reports = list(messages), list(reports)
        items = _items(conn_id, messages, reports)
        if not items:
            return Recorded()
        check_recordable(items)
        callbacks: list[Callable[[], None]] = []
        try:
            with create_session() as session:
                _note_opt_outs(session, conn_id, messages, reports)
                outcome = self._record(session, conn_id, items, callbacks)
        except sa.exc.DataError as err:
            raise Unrecordable("the database refused a value of this call") from err
        except Exception as err:
            if is_transient(err):
                raise Transient(describe_fault(err)) from None
            raise
        for callback in callbacks:  # listeners hear of events only once they are committed
            try:
                callback()
            except Exception as err:
                log.warning("SMS webhook: an asset listener failed (%s)", type(err).__name__)
        self._prune_now_and_then()
        return outcome

    def _record(self, session: Any, conn_id: str, items: list[_Item], callbacks: list[Callable[[], None]]) -> Recorded:
        from airflow_provider_sms.state import webhook_receipts as receipts

        receipts.ensure(session)
        outcome = Recorded()
        assets: dict[str, tuple[Any, str]] = {}
        keyed = [(receipts.digest(conn_id, item.kind, *item.identity), item) for item in items]
        # One order for every call, so two calls holding the same items lock their receipts in the same order.
        for _key, item in sorted(keyed, key=lambda pair: (pair[1].kind, pair[0])):
            if item.kind not in assets:
                assets[item.kind] = self._asset(session, conn_id, item.kind)
            asset, owner = assets[item.kind]
            if asset is None:
                outcome.unscheduled += 1
                self._warn_unscheduled(asset_uri(conn_id, item.kind))
                continue
            key = receipts.digest(owner, item.kind, *item.identity)
            subject = receipts.digest(owner, item.message_id)
            if not receipts.claim(
                session, kind=item.kind, key=key, subject=subject, conn_id=owner, status=item.status, flags=item.flags
            ):
                outcome.duplicates += 1
                continue
            if item.status not in (None, *FINAL_STATUSES) and receipts.any_recorded_with_status(
                session, kind=item.kind, subject=subject, statuses=FINAL_STATUSES
            ):
                outcome.superseded += 1  # the receipt stays, so a retry of it is a duplicate
                continue
            extra = {**item.extra, "conn_id": owner}
            event = self._register(session, asset, extra, callbacks)
            if event is not None:
                receipts.attach_event(session, kind=item.kind, key=key, asset_event_id=event.id)
            outcome.recorded += 1
        return outcome

    @staticmethod
    def _asset(session: Any, conn_id: str, kind: str) -> tuple[Any, str]:
        """The asset this connection's events go to, and the connection id it is named with.

        Airflow finds a connection defined in an environment variable whatever the case of its id
        (``AIRFLOW_CONN_<ID>`` is upper-cased), so for such a connection an asset whose id differs
        only in case is the same connection's, when it is the only one. Any other id is exact.
        """
        import sqlalchemy as sa
        from airflow.models.asset import AssetModel

        uri = asset_uri(conn_id, kind)
        exact = session.scalars(sa.select(AssetModel).where(AssetModel.uri == uri).order_by(AssetModel.id)).first()
        if exact is not None or f"AIRFLOW_CONN_{conn_id.upper()}" not in os.environ:
            return exact, conn_id
        query = sa.select(AssetModel).where(sa.func.lower(AssetModel.uri) == uri.lower()).limit(2)
        found = list(session.scalars(query))
        if len(found) != 1:
            return None, conn_id
        return found[0], found[0].uri[len("sms://") : -len(kind) - 1]

    @staticmethod
    def _register(session: Any, asset: Any, extra: dict[str, Any], callbacks: list[Callable[[], None]]) -> Any:
        from airflow.assets.manager import asset_manager

        kwargs: dict[str, Any] = {"asset": asset, "extra": extra, "source_is_api": True, "session": session}
        if _takes_callback_sink(asset_manager.register_asset_change):
            kwargs["callback_sink"] = callbacks
        return asset_manager.register_asset_change(**kwargs)

    def _prune_now_and_then(self) -> None:
        now = time.monotonic()
        with self._lock:
            if now < self._next_prune:
                return
            self._next_prune = now + PRUNE_EVERY
        try:
            from airflow.utils.session import create_session

            from airflow_provider_sms.state import webhook_receipts as receipts

            with create_session() as session:
                gone = receipts.prune(session)
            if gone:
                log.info("SMS webhooks: pruned %d receipts older than %s", gone, receipts.RETENTION)
        except Exception as err:  # a later call prunes; recording does not depend on it
            log.info("SMS webhooks: pruning receipts failed (%s)", type(err).__name__)

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
