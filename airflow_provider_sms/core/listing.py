"""Reading a provider's inbound listing, page by page, newest first, with bounds a hostile server cannot break.

Cellcast pages by number and Cloudware by a ``next_page`` URL; both hooks hand ``read_listing`` a
``fetch`` for one page and a ``read`` for one item, and get the same guarantees:

- paging stops at the first page holding an item older than ``since`` (listings are newest first), or
  holding nothing newer than what the previous poll already saw (``known``: the ids seen at exactly
  ``since``, so a burst of messages in one second is not read again on every poll);
- it also stops at an empty page, a page that brings nothing not already seen in this poll (a server
  that ignores the page parameter, or alternates between two pages), a ``next`` already followed, the
  page cap ``max_pages``, or the poll's deadline ``stop_at``: no poll can hang;
- an item that cannot be read (a garbage or missing timestamp, a year out of range, nesting too deep,
  an id or text that is not valid Unicode) is skipped and logged once (the first poll that meets it,
  numbers masked), and the valid items around it are still found;
- a page that cannot be read at all (a body too deeply nested to parse, say) is a failed poll
  (``SmsProviderUnavailableError``, retried like an outage), never an error of another kind.

The page cap bounds a poll at ``MAX_PAGES`` pages (1,000 messages at 50 a page): if more than that
arrive within one poll interval, the oldest of them are not read (a warning says so); poll more often.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_provider_sms.core.errors import SmsError, SmsProviderUnavailableError
from airflow_provider_sms.core.results import InboundMessage

log = logging.getLogger(__name__)

MAX_PAGES = 20
# What reading one hostile item may raise: none of it may end a poll.
UNREADABLE = (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError, UnicodeError)
_DIGITS = re.compile(r"\+?\d[\d ()-]{5,}\d")


class _Reported:
    """Fingerprints of the unreadable items already logged (bounded), so each is logged once."""

    def __init__(self, limit: int = 10_000) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._limit = limit

    def first_time(self, fingerprint: str) -> bool:
        if fingerprint in self._seen:
            return False
        self._seen[fingerprint] = None
        if len(self._seen) > self._limit:
            self._seen.popitem(last=False)
        return True


_reported = _Reported()


def _masked(text: str) -> str:
    """An error excerpt safe for a log line: anything that looks like a phone number masked."""
    from airflow_provider_sms.core.phone import mask_number

    return _DIGITS.sub(lambda m: mask_number(m.group(0)), text[:400])[:120]


def _identity(item: dict[str, Any]) -> str:
    """A short, stable fingerprint of an item (any item: deep, huge or not valid Unicode)."""
    try:
        raw = json.dumps(item, sort_keys=True, default=str)
    except UNREADABLE:
        raw = repr(sorted(map(repr, item)))  # keys only: a value nested too deep is not walked
    return hashlib.blake2b(raw.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


def _check_text(message: InboundMessage) -> None:
    """Raise ``UnicodeError`` for a message whose strings cannot be written as UTF-8 (a lone surrogate)."""
    for value in (message.message_id, message.from_number, message.to_number or "", message.text):
        value.encode("utf-8")


def _fetch(fetch: Callable[[Hashable], Page], token: Hashable, provider: str) -> Page:
    """One page; a page that cannot be read at all is a failed poll, retried like an outage."""
    try:
        page = fetch(token)
    except SmsError:
        raise
    except UNREADABLE as err:
        raise SmsProviderUnavailableError(
            f"a page of the listing could not be read ({type(err).__name__})", provider=provider
        ) from None
    if not isinstance(page.items, list):
        raise SmsProviderUnavailableError("a page of the listing holds no list of items", provider=provider)
    return page


@dataclass
class Page:
    """One page of a listing: its raw items, and what to fetch next (None at the end)."""

    items: list[Any]
    next: Hashable | None


# One item -> its time, and the inbound message it is (None for items that are not replies, such as
# Cloudware's ``message_sent``). Raises ValueError for an item that cannot be read.
ItemReader = Callable[[dict[str, Any]], "tuple[datetime, InboundMessage | None]"]


def read_listing(
    fetch: Callable[[Hashable], Page],
    first: Hashable,
    read: ItemReader,
    *,
    since: datetime | None,
    provider: str,
    known: Collection[str] = (),
    max_pages: int = MAX_PAGES,
    stop_at: float | None = None,
) -> Iterator[InboundMessage]:
    """Yield the replies of a listing, newest first, down to ``since``, within the bounds above.

    :param fetch: reads the page for a token (the first is ``first``).
    :param read: turns one item into its time and message.
    :param known: ids of messages at exactly ``since`` that an earlier poll already read.
    :param stop_at: a ``time.monotonic()`` deadline for the whole poll.
    """
    token: Hashable | None = first
    followed: set[Hashable] = set()
    seen: set[str] = set()
    skipped: list[str] = []
    pages = 0
    try:
        while token is not None:
            if token in followed:
                log.warning("%s: the listing points back to a page already read; stopping this poll", provider)
                return
            if pages >= max_pages:
                log.warning(
                    "%s: stopped after %d pages in one poll; older messages of this burst are not read "
                    "(poll more often)",
                    provider,
                    pages,
                )
                return
            if stop_at is not None and time.monotonic() >= stop_at:
                log.warning("%s: the poll ran out of time after %d page(s)", provider, pages)
                return
            followed.add(token)
            page = _fetch(fetch, token, provider)
            pages += 1
            fresh = 0
            unseen = 0
            reached_since = False
            for item in page.items:
                if not isinstance(item, dict):
                    continue
                identity = _identity(item)
                if identity in seen:
                    continue
                seen.add(identity)
                fresh += 1
                try:
                    when, message = read(item)
                    if message is not None:
                        _check_text(message)
                except UNREADABLE as err:
                    if _reported.first_time(identity):
                        skipped.append(f"{type(err).__name__}: {_masked(str(err))}")
                    continue
                if since is not None and when < since:
                    reached_since = True
                    continue
                if message is not None and when == since and message.message_id in known:
                    continue
                unseen += 1
                if message is not None:
                    yield message
            if not page.items or reached_since or (since is not None and not unseen):
                return
            if not fresh:
                log.warning("%s: a page brought nothing new (the server repeats pages); stopping this poll", provider)
                return
            token = page.next
    finally:
        if skipped:  # each unreadable item is logged the first time it is met, not on every poll
            log.warning(
                "%s: skipped %d listing item(s) that could not be read (first: %s)", provider, len(skipped), skipped[0]
            )
