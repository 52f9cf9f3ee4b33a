"""``DeliveryFallbackTrigger``: wait in the triggerer for what decides a delivery-based fallback's next step.

It only waits and reports; the task sends (each step once, through its send ledger), so a trigger
that runs twice, or a triggerer that restarts, can never text anyone. While deferred, it polls the
delivery reports of the texts still pending (``core.reports.poll`` in a worker thread, each asked of
the connection that accepted it) and, with an acknowledgement wanted, reads the replies through the
same inbox machinery as ``InboundSmsTrigger`` (on Airflow 3.3 the connection's one shared poll). It
fires once:

- ``{"status": "acked", "message": {...}}``: one of the paged numbers replied with the match (``ACK``);
- ``{"status": "reports", "reports": [...]}``: a text failed, expired or was refused by the network, or
  (without an acknowledgement to wait for) every text was confirmed: the task decides now;
- ``{"status": "wake", "reports": [...]}``: ``wake_at`` came (a ``deliver_within`` or ``ack_within``
  ran out) with what is known by then;
- ``{"status": "error", "error": "..."}``: what waiting cannot fix (authentication, a bad connection).

Every event carries ``state`` (the ladder, ``core.fallback.Ladder.to_dict()``) as it was given, so the
task resumes from the event alone. A connection without a report API (Clickatell) is not polled: its
texts count as unconfirmed until ``wake_at``. Outages and rate limits are logged and polled through.
Numbers are masked in the trigger's ``repr`` and its events' ``repr`` (what the triggerer logs).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Hashable, Sequence
from datetime import datetime, timezone
from typing import Any

from airflow_provider_sms._compat import TriggerEvent
from airflow_provider_sms.core.errors import SmsError, SmsUnsupportedFeatureError, SmsValidationError
from airflow_provider_sms.core.phone import mask_number
from airflow_provider_sms.core.results import UNDELIVERED_STATUSES, DeliveryReport
from airflow_provider_sms.core.timestamps import parse_timestamp
from airflow_provider_sms.triggers.inbound import InboundSmsTrigger, InboxWaiter, SmsTriggerEvent
from airflow_provider_sms.triggers.inbox import Inbox, InboxPoll

_E164 = re.compile(r"\+\d{7,15}")


def masked(text: str) -> str:
    """``text`` with every E.164 number in it masked (``+614*****911``)."""
    return _E164.sub(lambda m: mask_number(m.group(0)), text)


class FallbackEvent(SmsTriggerEvent):
    """An event whose ``repr`` masks every number, wherever in the payload it is."""

    def __init__(self, payload: Any, **kwargs: Any) -> None:
        super().__init__(payload, **kwargs)

    def __repr__(self) -> str:
        return masked(super().__repr__())


class DeliveryFallbackTrigger(InboxWaiter):
    """Wait until a fallback's next step is due: a text not delivered, an acknowledgement, or ``wake_at``.

    :param sms_conn_id: the connection whose inbox carries acknowledgements (Cellcast, Cloudware);
        without ``ack_from`` only a name (no inbox is read).
    :param messages: the pending texts: ``{"conn_id", "message_id", "to", "deliver_by", "confirm"}``
        (``confirm``: the status that counts as reached, ``delivered`` or, for Cloudware, ``sent``).
    :param wake_at: ISO-8601 time to fire ``wake`` if nothing decided the step before.
    :param poll_interval: seconds between report polls (and inbox polls), at least 1.
    :param ack_from: numbers whose matching reply acknowledges; None: no acknowledgement is waited for.
    :param match: the acknowledgement (keywords as whole words, any case; or a regex).
    :param since: ISO-8601: replies before it never acknowledge (the first page's time).
    :param state: the ladder, returned untouched in every event.
    """

    def __init__(
        self,
        sms_conn_id: str,
        *,
        messages: Sequence[dict[str, Any]],
        wake_at: str,
        poll_interval: float = 30.0,
        ack_from: Sequence[str] | None = None,
        match: str | Sequence[str] | None = ("ACK",),
        since: str | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self._set_filter_args(sms_conn_id, ack_from, match, poll_interval)
        self.ack = ack_from is not None
        self.messages = [dict(m) for m in messages]
        self.wake_at = wake_at
        self.since = since
        self.state = dict(state or {})

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return self._classpath(), {
            "sms_conn_id": self.sms_conn_id,
            "messages": self.messages,
            "wake_at": self.wake_at,
            "poll_interval": self.poll_interval,
            "ack_from": self.from_numbers if self.ack else None,
            "match": self.match,
            "since": self.since,
            "state": self.state,
        }

    def __repr__(self) -> str:
        classpath, kwargs = self.serialize()
        return masked(f"<{classpath} {kwargs!r}>")

    # --- acknowledgements through the inbox: shared on Airflow 3.3 when one is waited for --------------

    def shared_stream_key(self) -> Hashable | None:
        return super().shared_stream_key() if self.ack else None

    async def run(self) -> AsyncIterator[TriggerEvent]:
        if self.ack:
            async for event in super().run():
                yield event
            return
        yield await self._decide(None)

    def _wait(self, polls: AsyncIterator[InboxPoll], inbox: Inbox, *, shared: bool) -> AsyncIterator[TriggerEvent]:
        return self._wait_both(polls, inbox, shared=shared)

    async def _wait_both(
        self, polls: AsyncIterator[InboxPoll], inbox: Inbox, *, shared: bool
    ) -> AsyncIterator[TriggerEvent]:
        ack = InboundSmsTrigger(
            self.sms_conn_id,
            from_numbers=self.from_numbers,
            match=self.match,
            since=self.since,
            poll_interval=self.poll_interval,
        )
        yield await self._decide(ack._wait(polls, inbox, shared=shared))

    # --- the decision ----------------------------------------------------------------------------

    def _event(self, status: str, known: dict[tuple[str, str], dict[str, Any]], **extra: Any) -> TriggerEvent:
        return FallbackEvent({"status": status, "reports": list(known.values()), "state": self.state, **extra})

    async def _decide(self, acks: AsyncIterator[TriggerEvent] | None) -> TriggerEvent:
        """Race the report polls, the acknowledgement and the clock; the first to decide wins."""
        known: dict[tuple[str, str], dict[str, Any]] = {}
        watch = asyncio.ensure_future(self._watch(known))
        tasks: set[asyncio.Future[Any]] = {watch}
        heard = asyncio.ensure_future(acks.__anext__()) if acks is not None else None
        if heard is not None:
            tasks.add(heard)
        left = max((parse_timestamp(self.wake_at) - datetime.now(timezone.utc)).total_seconds(), 0.0)
        try:
            done, _ = await asyncio.wait(tasks, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
        if heard is not None and heard in done and not heard.cancelled():
            try:
                event = heard.result()
            except StopAsyncIteration:
                event = None
            payload = getattr(event, "payload", None) or {}
            if payload.get("status") == "matched":
                return self._event("acked", known, message=payload["message"])
            if payload.get("status") == "error":
                return self._event("error", known, error=payload.get("error"))
        if watch in done and not watch.cancelled():
            status, error = watch.result()
            return self._event(status, known, **({"error": error} if error else {}))
        return self._event("wake", known)

    async def _watch(self, known: dict[tuple[str, str], dict[str, Any]]) -> tuple[str, str | None]:
        """Poll the pending texts' reports until one is undelivered or (no ack wanted) all are confirmed.

        Returns ``("reports", None)``, or ``("error", reason)``; never returns when nothing can be
        polled (the clock decides then). ``known`` is filled as reports come, for whoever wins.
        """
        from asgiref.sync import sync_to_async

        from airflow_provider_sms.core.reports import Tracked, poll
        from airflow_provider_sms.hooks import get_sms_hook

        by_conn: dict[str, dict[str, str]] = {}
        confirm: dict[tuple[str, str], str] = {}
        for m in self.messages:
            if m.get("message_id"):
                by_conn.setdefault(str(m["conn_id"]), {})[str(m["message_id"])] = str(m.get("to") or "")
                confirm[(str(m["conn_id"]), str(m["message_id"]))] = str(m.get("confirm") or "delivered")
        hooks: dict[str, Any] = {}
        tracked: dict[str, Tracked] = {}
        for conn_id, ids in by_conn.items():
            try:
                hook = await sync_to_async(get_sms_hook)(conn_id)
            except Exception as err:  # a missing or wrong connection: waiting cannot fix it
                return "error", f"{conn_id!r}: {err}"
            hooks[conn_id] = hook
            tracked[conn_id] = Tracked(hook.provider, ids, last_status=hook.last_delivery_status)
        reports: dict[str, dict[str, DeliveryReport]] = {c: {} for c in tracked}
        while True:
            for conn_id in list(tracked):
                try:
                    reports[conn_id] = await asyncio.to_thread(poll, hooks[conn_id], tracked[conn_id], reports[conn_id])
                except SmsUnsupportedFeatureError:
                    self.log.info("%s has no delivery report API: its texts are decided at %s", conn_id, self.wake_at)
                    del tracked[conn_id]
                    continue
                except SmsError as err:
                    if not err.retryable:
                        return "error", f"{conn_id!r}: {masked(str(err))}"
                    self.log.warning("could not read delivery reports from %s this time: %s", conn_id, masked(str(err)))
                    continue
                for report in reports[conn_id].values():
                    known[(conn_id, report.message_id)] = {**report.to_dict(), "conn_id": conn_id}
            statuses = {key: known[key]["status"] if key in known else None for key in confirm}
            if any(status in UNDELIVERED_STATUSES for status in statuses.values()):
                return "reports", None
            confirmed = all(statuses[key] in (want, "delivered") for key, want in confirm.items())
            if confirmed and not self.ack and confirm:
                return "reports", None
            if not tracked:
                await asyncio.Event().wait()  # nothing to poll: the clock or an acknowledgement decides
            pending = sum(1 for key, want in confirm.items() if statuses[key] not in (want, "delivered"))
            self.log.info("%d text(s) not confirmed yet", pending)
            await asyncio.sleep(self.poll_interval)


# --- the notifier's path: the same ladder, driven from a callback ------------------------------------


async def afallback_notify(
    context: Any,
    *,
    conn_ids: Sequence[str],
    to: Any,
    text: str,
    sender: str | None = None,
    deliver_within: Any,
    escalation: Sequence[Any] = (),
    poll_interval: float = 30.0,
    hook_kwargs: dict[str, Any] | None = None,
    key: str | None = None,
) -> dict[str, Any]:
    """Send ``text`` with a delivery-based fallback from a callback, awaiting each step's outcome with
    ``DeliveryFallbackTrigger`` in the running event loop (``SmsNotifier.async_notify``: the triggerer).

    Each step goes through ``send_sms_once`` under its own key (``core.fallback.step_key``): where the
    callback has a task instance, a callback that runs twice texts nobody twice. Sends and connection
    lookups run in a worker thread, so the loop only awaits. Returns ``core.fallback.summary``.
    """
    from asgiref.sync import sync_to_async

    from airflow_provider_sms.core.fallback import FallbackPolicy, Ladder, advance, apply_reports, summary
    from airflow_provider_sms.hooks import get_sms_hook

    region = (await sync_to_async(get_sms_hook)(conn_ids[0], **(hook_kwargs or {}))).default_region
    policy = FallbackPolicy.of(
        conn_ids, _numbers(to), escalation=escalation, deliver_within=deliver_within, region=region
    )
    ladder = Ladder()
    send = _step_sender(context, text, sender, hook_kwargs or {}, key)
    log = _log()
    while True:
        wait = await sync_to_async(advance)(policy, ladder, send, clock=lambda: datetime.now(timezone.utc))
        if wait is None:
            out = summary(policy, ladder)
            log.info("SMS fallback ended %s at level %d", out["status"], out["level"])
            return out
        trigger = DeliveryFallbackTrigger(
            policy.conn_ids[0], messages=wait.messages, wake_at=wait.wake_at, poll_interval=poll_interval
        )
        payload: dict[str, Any] = {}
        async for event in trigger.run():
            payload = dict(event.payload)
            break
        if payload.get("status") == "error":  # reports cannot be read: texts count as unconfirmed, as at wake
            log.warning("SMS fallback: reading delivery reports failed: %s", payload.get("error"))
            left = (parse_timestamp(wait.wake_at) - datetime.now(timezone.utc)).total_seconds()
            await asyncio.sleep(max(left, 0.0))
        apply_reports(ladder, payload.get("reports") or [])


def fallback_send(context: Any, **kwargs: Any) -> Any:
    """``fallback_notify`` for a notifier's send: a ``SendResult`` (every text accepted, with its
    ``conn_id``, and every refusal) in place of ``send_sms_once``'s, with the ladder's outcome logged.
    ``provider`` names the result's provider (the primary's)."""
    from airflow_provider_sms.core.phone import mask_number
    from airflow_provider_sms.core.results import SendResult

    provider = str(kwargs.pop("provider", None) or kwargs["conn_ids"][0])
    out = fallback_notify(context, **kwargs)
    result = SendResult(provider)
    for t in out["texts"]:
        if t["state"] == "refused" and t["code"] == "unsubscribed":
            result.unsubscribed.append(t["to"])
        elif t["state"] == "refused":
            result.add_rejected(t["to"], t["code"] or "rejected", "refused during the delivery fallback")
        else:
            result.accepted.append({"to": t["to"], "message_id": t["message_id"], "conn_id": t["conn_id"]})
    reached = ", ".join(f"{mask_number(n)} via {c}" for n, c in out["reached"].items()) or "nobody confirmed"
    _log().info("SMS fallback %s: %s; %d text(s)", out["status"], reached, len(out["texts"]))
    return result


def fallback_notify(context: Any, **kwargs: Any) -> dict[str, Any]:
    """``afallback_notify`` for a synchronous callback (``SmsNotifier.notify`` in a worker): it blocks the
    callback while it waits, at most ``deliver_within`` per step (connections × levels steps), polling
    in an event loop of its own thread, so it works whether or not the caller runs a loop."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sms-fallback") as pool:
        return pool.submit(asyncio.run, afallback_notify(context, **kwargs)).result()


def _numbers(to: Any) -> list[str]:
    from airflow_provider_sms.core.phone import split_recipients
    from airflow_provider_sms.core.templated import list_from_template

    return split_recipients(list_from_template(to))


def _log() -> Any:
    import logging

    return logging.getLogger(__name__)


def _step_sender(context: Any, text: str, sender: str | None, hook_kwargs: dict[str, Any], key: str | None) -> Any:
    """``send(step) -> (result dict, confirming status)``: one step through ``send_sms_once``, named in
    the send ledger by the step and ``key`` (default: the text)."""
    from airflow_provider_sms.core.fallback import Step, step_key
    from airflow_provider_sms.hooks import get_sms_hook
    from airflow_provider_sms.notifications.once import send_sms_once

    def send(step: Step) -> tuple[dict[str, Any], str]:
        hook = get_sms_hook(step.conn_id, **hook_kwargs)
        try:
            named = step_key(step, text if key is None else key)
            result = send_sms_once(context, hook, list(step.numbers), text, sender=sender, key=named)
        except SmsValidationError:
            raise
        except SmsError as err:  # the whole step failed: its recipients move on where the code allows
            result = err.result
            if result is None:
                from airflow_provider_sms.core.errors import BY_CODE
                from airflow_provider_sms.core.results import SendResult

                result = SendResult(hook.provider)
                for number in step.numbers:
                    result.add_rejected(number, err.code if err.code in BY_CODE else "delivery_unknown", str(err))
        return result.to_dict(), hook.last_delivery_status

    return send
