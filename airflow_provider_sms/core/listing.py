"""Reading a provider's inbound listing, page by page, newest first, with bounds a hostile server cannot break.

Cellcast pages by number and Cloudware by a ``next_page`` URL; both hooks hand ``read_listing`` a
``fetch`` for one page and a ``read`` for one item, and get the same guarantees:

- paging stops at the first page holding an item older than ``since`` (listings are newest first), or
  holding nothing newer than what the previous poll already saw (``known``: the ids seen at exactly
  ``since``, so a burst of messages in one second is not read again on every poll);
- it also stops at an empty page, a page that brings nothing not already seen in this poll (a server
  that ignores the page parameter, or alternates between two pages), a ``next`` already followed, the
  page cap ``max_pages``, or the poll's deadline ``stop_at``: no poll can hang;
- an item that cannot be read (a garbage or missing timestamp, say) is skipped with one warning per
  poll, and the valid items around it are still found.

The page cap bounds a poll at ``MAX_PAGES`` pages (1,000 messages at 50 a page): if more than that
arrive within one poll interval, the oldest of them are not read (a warning says so); poll more often.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Hashable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_provider_sms.core.results import InboundMessage

log = logging.getLogger(__name__)

MAX_PAGES = 20


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
            page = fetch(token)
            pages += 1
            fresh = 0
            unseen = 0
            reached_since = False
            for item in page.items:
                if not isinstance(item, dict):
                    continue
                identity = json.dumps(item, sort_keys=True, default=str)
                if identity in seen:
                    continue
                seen.add(identity)
                fresh += 1
                try:
                    when, message = read(item)
                except ValueError as err:
                    skipped.append(str(err)[:120])
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
        if skipped:
            log.warning(
                "%s: skipped %d listing item(s) that could not be read (first: %s)", provider, len(skipped), skipped[0]
            )
