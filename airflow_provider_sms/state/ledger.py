"""The send ledger: which recipients each try of a task got accepted, kept where the next try can read it.

A send writes, as it goes, *claims* (recipients whose request is about to go out) and *outcomes*
(accepted with the provider's message id and the connection that took it, or refused with a code),
so a retry of the same task instance, even after the worker was killed, sends only to recipients no
earlier try got accepted for, and knows which requests may have gone out without an answer (claimed,
no outcome: *in doubt*). Entries hold numbers, ids, codes, counts and a short hash of the text, never
the text itself.

Where it is kept (``ledger_for``), always through Airflow's own means, reachable from any worker:

- Airflow 3.3+: the task state store (``context["task_state_store"]``, the execution API), scoped by
  Airflow to dag, run, task and map index; it survives retries and clears, is deleted with its DAG run
  (a foreign key with ``ON DELETE CASCADE``), and each key expires after ``RETENTION``.
- Airflow 2.11 and 3.0-3.2: Airflow Variables (the ORM on 2.11, the Task SDK on 3.x), one per chunk,
  named from a hash of dag, run, task and map index; ``sweep_variable_ledgers`` deletes those of
  deleted runs and those older than ``RETENTION``.

The ledger is append-only: each write is a new numbered chunk (``sms_send_ledger/<n>``), so a write
never races another and a reader reads chunks 0, 1, ... until one is missing. Writes are batched and
the claims slide (``Journal``): a pool thread whose request finished hands in its outcome and waits
for the claim of its next request; one write claims the next request of every thread waiting (two
messages' worth at least, or all that will come) and carries every outcome handed in since the
previous write, outcomes first. So each thread has at most one request claimed without a recorded
outcome, and **after a crash at most the requests in flight are in doubt: the pool size x the batch**
(16 messages for Cloudware's 16 one-message requests, one request's recipients for a single
Cellcast or Clickatell batch), until the provider is asked. A Cloudware send makes one write per 2
messages or more, never one per message (unless the pool runs one request at a time); a Cellcast or
Clickatell one, one per request of up to 1,000 or 200.

Chunk format (JSON, one object per chunk; every part optional; ``<tkey>`` is ``text_key`` of the text,
or of the key a sender passed): ``try`` (the try that wrote it), ``at`` (ISO time, to the second),
``conn`` (the connection whose requests it records); ``claim``: ``{tkey: [number, ...]}`` (E.164
numbers whose request may go out from now); ``ref``: ``{tkey: [[ref, count], ...]}`` (the provider-side
reference of the claimed requests, e.g. Clickatell's ``clientMessageId``, null where one carried none:
each covers the next ``count`` numbers of this chunk's ``claim`` list); ``ok``: ``{tkey: [[number, message_id, conn_id],
...]}`` (accepted); ``no``: ``{tkey: [[number, code, reason], ...]}`` (refused; ``code`` from
``core.errors``, ``reason`` cut to 200 characters); ``sms``: ``{tkey: {"requests": int, "accepted":
int, "parts": int, "encoding": "GSM-7"|"UCS-2", "cost": float, "unpriced": int}}`` (what this chunk
adds for that text: HTTP requests made, retries included, counting a claimed request as one until
its answer says how many; recipients accepted; SMS parts per message and the encoding, when known;
the estimated cost of those accepted, from the ``conn`` connection's ``prices`` extra in its billing
currency, present only when it has one; how many accepted had no price); ``note``: ``{name: value}``
(``SendLedger.note``). Variable chunks also hold ``scope`` (``[dag_id, run_id, task_id, map_index]``)
and ``written_at``. ``LedgerView`` is what a reader makes of them: per text, each recipient
(``Recipient``) and the totals (``TextStats``: requests, accepted, parts, encoding, cost).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from airflow_provider_sms.core.errors import BY_CODE

log = logging.getLogger(__name__)

KEY = "sms_send_ledger"
RETENTION = timedelta(days=30)
MAX_CHUNKS = 100_000  # a reader stops here whatever it finds: growth is bounded per task instance
CHUNK_ENTRIES = 1_000  # numbers per key: about 50 KB at most, under the task state store's 64 KB
VARIABLE_PREFIX = f"{KEY}/"

GRACE = 0.02  # seconds a claim waits for other threads when no claimed request is out
# The fewest messages one write claims when the pool allows: each pool thread waiting for its claim is a
# request not in flight, so a larger group slows the send (16 one-message requests of jittered latency:
# about 92% of a bare pool's rate with 2, 89% with 3, 87% with 4, 74% with 8; ``benchmarks/ledger.py``).
MESSAGES_PER_WRITE = 2
Claim = tuple[str | None, list[str]]  # one request's reference (or None) and its numbers


def text_key(message: str) -> str:
    """A short hash naming a text in the ledger (the text itself is never stored)."""
    return hashlib.sha256(message.encode("utf-8")).hexdigest()[:16]


class ChunkStore(Protocol):
    """Where the numbered chunks of one task instance's ledger live."""

    def get(self, index: int) -> dict[str, Any] | None: ...

    def put(self, index: int, chunk: dict[str, Any]) -> None: ...


class MemoryStore:
    """Chunks in a dict: for tests, benchmarks and sends outside a task (nothing survives the process)."""

    def __init__(self) -> None:
        self.chunks: dict[int, dict[str, Any]] = {}
        self.writes = 0

    def get(self, index: int) -> dict[str, Any] | None:
        chunk = self.chunks.get(index)
        return json.loads(json.dumps(chunk)) if chunk is not None else None

    def put(self, index: int, chunk: dict[str, Any]) -> None:
        self.writes += 1
        self.chunks[index] = json.loads(json.dumps(chunk))


class TaskStateStore:
    """Airflow 3.3+: the task state store of the running task instance (``context["task_state_store"]``)."""

    def __init__(self, accessor: Any, retention: timedelta = RETENTION) -> None:
        self.accessor = accessor
        self.retention = retention

    def get(self, index: int) -> dict[str, Any] | None:
        value = self.accessor.get(f"{KEY}/{index}")
        return value if isinstance(value, dict) else None

    def put(self, index: int, chunk: dict[str, Any]) -> None:
        self.accessor.set(f"{KEY}/{index}", chunk, retention=self.retention)


class VariableStore:
    """Airflow 2.11 and 3.0-3.2: one Variable per chunk, named from a hash of the task instance."""

    def __init__(self, scope: Sequence[Any]) -> None:
        self.scope = [str(part) for part in scope]  # dag_id, run_id, task_id, map_index
        digest = hashlib.sha256("\x1f".join(self.scope).encode("utf-8")).hexdigest()[:32]
        self.prefix = f"{VARIABLE_PREFIX}{digest}/"

    @staticmethod
    def _variable() -> Any:
        try:
            from airflow.sdk import Variable
        except ImportError:  # Airflow 2.11: the ORM model, which workers may use there
            from airflow.models import Variable  # type: ignore[no-redef,attr-defined,unused-ignore]
        return Variable

    def get(self, index: int) -> dict[str, Any] | None:
        raw = self._variable().get(f"{self.prefix}{index}", None)
        if raw is None:
            return None
        value = json.loads(raw) if isinstance(raw, str) else raw
        return value if isinstance(value, dict) else None

    def put(self, index: int, chunk: dict[str, Any]) -> None:
        value = {**chunk, "scope": self.scope, "written_at": datetime.now(timezone.utc).isoformat()}
        self._variable().set(f"{self.prefix}{index}", json.dumps(value, separators=(",", ":")))
        if index == 0:
            self._sweep()

    @staticmethod
    def _sweep() -> None:
        """Each new ledger sweeps old ones, where the worker may use the ORM (Airflow 2.11)."""
        try:
            import airflow.sdk  # noqa: F401
        except ImportError:
            try:
                sweep_variable_ledgers()
            except Exception as exc:  # a sweep is housekeeping: it never fails a send
                log.warning("could not sweep old send ledgers: %s", type(exc).__name__)


@dataclass
class Recipient:
    """What the ledger knows of one recipient of one text."""

    accepted: dict[str, Any] | None = None  # {"message_id", "conn_id"}
    code: str | None = None  # the latest refusal, when never accepted
    reason: str | None = None
    claimed: bool = False  # a request to them may have gone out
    claimed_by: str | None = None  # the connection whose request it was
    claimed_at: datetime | None = None  # when it was claimed (just before the request)
    ref: str | None = None  # the provider-side reference of that request (Clickatell's clientMessageId)

    @property
    def settled(self) -> bool:
        """Accepted, or refused for a reason a resend would meet again (not "certainly not processed")."""
        if self.accepted is not None or self.code == "unsubscribed":
            return True
        if self.code is None or self.code == "delivery_unknown":
            return False
        known = BY_CODE.get(self.code)
        return known is None or not known.fail_over

    @property
    def in_doubt(self) -> bool:
        """A request may have reached the provider and no earlier try knows what became of it."""
        if self.settled:
            return False
        return self.code == "delivery_unknown" or (self.claimed and self.code is None)


@dataclass
class TextStats:
    """What the tries recorded of one text, in total (the ``sms`` part of the chunks)."""

    requests: int = 0  # HTTP requests, retries included; an unanswered claimed request counts as one
    accepted: int = 0  # recipients accepted (in the try's answers, or confirmed by the provider later)
    parts: int | None = None  # SMS parts per message, when an answer said
    encoding: str | None = None
    cost: float | None = None  # estimated, from the connection's ``prices``; None without prices
    unpriced: int = 0  # accepted recipients whose country the prices did not cover
    by_try: dict[int, int] = field(default_factory=dict)  # try -> its requests

    def add(self, part: dict[str, Any], try_number: int = 0) -> None:
        self.requests += _int(part.get("requests"))
        self.by_try[try_number] = self.by_try.get(try_number, 0) + _int(part.get("requests"))
        self.accepted += _int(part.get("accepted"))
        if _int(part.get("parts")) > 0:
            self.parts = _int(part.get("parts"))
        if isinstance(part.get("encoding"), str):
            self.encoding = part["encoding"]
        cost = part.get("cost")
        if isinstance(cost, (int, float)) and not isinstance(cost, bool):
            self.cost = round((self.cost or 0.0) + float(cost), 6)
        self.unpriced += _int(part.get("unpriced"))


@dataclass
class LedgerView:
    """Everything earlier tries recorded, per text (``text_key``) and recipient."""

    texts: dict[str, dict[str, Recipient]] = field(default_factory=dict)
    stats: dict[str, TextStats] = field(default_factory=dict)  # per text key: requests, parts, cost
    notes: dict[str, Any] = field(default_factory=dict)  # name -> the latest value ``SendLedger.note`` wrote
    chunks: int = 0
    tries: set[int] = field(default_factory=set)

    def of(self, message: str) -> dict[str, Recipient]:
        return self.texts.get(text_key(message), {})

    def stats_of(self, message: str) -> TextStats:
        return self.stats.get(text_key(message), TextStats())

    def in_doubt(self) -> int:
        """Recipients in doubt, over every text."""
        return sum(1 for people in self.texts.values() for person in people.values() if person.in_doubt)


class SendLedger:
    """The ledger of one task instance: read once when a try starts, appended to as it sends.

    :param store: where the chunks live (``ledger_for`` picks it).
    :param try_number: the current try, recorded with each chunk (for the log and the result).
    :param prices: the ``prices`` of connections already known, by connection id (None: no prices);
        the others are looked up when a send through them starts.
    """

    def __init__(self, store: ChunkStore, *, try_number: int = 1, prices: dict[str, Any] | None = None) -> None:
        self.store = store
        self.try_number = try_number
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._next: int | None = None
        self._view: LedgerView | None = None
        self._handed: set[str] = set()  # text keys whose earlier requests a result already counted
        self._prices: dict[str, Any] = dict(prices or {})
        self._prices_lock = threading.Lock()

    def view(self) -> LedgerView:
        """What earlier tries recorded (read once per try; later reads return the same view)."""
        with self._lock:
            if self._view is None:
                self._view = self._read()
            return self._view

    def _read(self) -> LedgerView:
        view = LedgerView()
        index = 0
        while index < MAX_CHUNKS:
            chunk = self.store.get(index)
            if chunk is None:
                break
            _fold(view, chunk)
            index += 1
        view.chunks = index
        self._next = index
        return view

    def write(self, chunk: dict[str, Any]) -> None:
        """Append one chunk (claims and outcomes); durable when this returns.

        One write at a time, and the next chunk number is taken only once this one is stored: a later
        try reads chunks up to the first missing number, so a failed write must not leave a gap that
        hides the writes after it (their claims would be resent). A failed write's number is reused by
        the next write, which is safe: what it held (claims) was never acted on, or (outcomes) is
        written again."""
        with self._write_lock:
            with self._lock:
                if self._next is None:
                    self._view = self._read()
                assert self._next is not None
                index = self._next
            self.store.put(index, {"try": self.try_number, **chunk})
            with self._lock:
                self._next = index + 1

    def note(self, name: str, value: Any) -> None:
        """Record a small JSON value (a reference, an id; never message text) for later tries to read in
        ``view().notes[name]``; durable when this returns."""
        self.write({"at": _now(), "note": {name: value}})

    def earlier_requests(self, message: str) -> int:
        """The requests earlier tries made for ``message``, for the merged result; once per try: a send
        split into groups (local time, personalized) counts them in its first group only, and a try
        that already wrote for the text (before it deferred) counts none."""
        tkey = text_key(message)
        stats = self.view().stats.get(tkey)
        with self._lock:
            if stats is None or tkey in self._handed or self.try_number in stats.by_try:
                return 0
            self._handed.add(tkey)
        return sum(count for number, count in stats.by_try.items() if number < self.try_number)

    def prices(self, conn_id: str) -> Any:
        """The ``prices`` extra of ``conn_id`` as ``core.cost.parse_prices`` reads it, looked up once per
        try; None without one (or when the connection cannot be read: the cost is then left out)."""
        with self._prices_lock:
            if conn_id not in self._prices:
                try:
                    from airflow_provider_sms.hooks import get_sms_hook

                    self._prices[conn_id] = get_sms_hook(conn_id).rules.prices
                except Exception as exc:  # an estimate is never worth failing a send for
                    log.debug("no prices for %s: %s", conn_id, type(exc).__name__)
                    self._prices[conn_id] = None
            return self._prices[conn_id]

    def journal(self, message: str, conn_id: str, *, group: int | None = None) -> Journal:
        """The journal one send of ``message`` through ``conn_id`` writes to (see ``core.pipeline``).

        :param group: the fewest claims one write waits for (None: enough requests for
            ``MESSAGES_PER_WRITE`` messages, at most the pool).
        """
        return Journal(self, text_key(message), conn_id, group=group)


class Journal:
    """What ``core.pipeline.run`` calls around each request of one send: sliding claims, batched writes.

    ``before(i)`` returns once batch ``i`` is claimed durably. The calling thread joins the threads
    waiting for a claim; when at least ``group`` wait (two messages' worth), or no claimed request is
    still out (nobody else will come soon), one of them writes: the outcomes handed in since the last
    write, then a claim for every waiting batch, in one chunk. The others return when it is written. A
    thread hands in its outcome (``after``) before it asks for its next claim, so each thread has at
    most one request claimed without a recorded outcome: the ledger never holds more requests in doubt
    than the pool runs at once. ``end()`` writes what is left.
    """

    def __init__(self, ledger: SendLedger, tkey: str, conn_id: str, *, group: int | None = None) -> None:
        self.ledger = ledger
        self.tkey = tkey
        self.conn_id = conn_id
        self.fixed_group = group
        self.group = max(int(group or 1), 1)
        self.width = 1
        self._batches: Sequence[Sequence[str]] = ()
        self._cv = threading.Condition()
        self._waiting: dict[int, str | None] = {}  # batch -> its request's reference, waiting for a claim
        self._out: set[int] = set()  # claimed durably, no outcome handed in yet
        self._seen = 0  # batches that asked for a claim
        self._since = 0.0  # when the first of the threads waiting now began to wait
        self._writing = False
        self._ok: list[list[Any]] = []
        self._no: list[list[Any]] = []
        self._stats: dict[str, Any] = {}
        self.writes = 0

    def begin(self, batches: Sequence[Sequence[str]], width: int = 1) -> None:
        """A send of ``batches`` starts, ``width`` requests at a time."""
        self._batches = batches
        self.width = max(int(width), 1)
        per_request = max((len(batch) for batch in batches), default=1)
        wanted = -(-MESSAGES_PER_WRITE // max(per_request, 1))  # requests that make a write worth it
        self.group = int(self.fixed_group or min(self.width, max(wanted, 1)))
        self.ledger.prices(self.conn_id)  # looked up here, before the pool starts, not in its threads

    def before(self, index: int, ref: str | None = None) -> None:
        with self._cv:
            if not self._waiting:
                self._since = time.monotonic()
            self._waiting[index] = ref
            self._seen += 1
            while index not in self._out:
                if index in self._waiting and not self._writing and self._ready():
                    break  # this thread writes the claim of every batch waiting
                self._cv.wait(GRACE)
            else:
                return  # another thread's write claimed it
            group, self._waiting = self._waiting, {}
            ok, no, stats = self._take()
            self._writing = True
        try:
            claims = [(group[i], list(self._batches[i])) for i in sorted(group)]
            self._flush(ok, no, {**stats, "requests": stats.get("requests", 0) + len(claims)}, claims)
        except BaseException:
            with self._cv:
                self._restore(ok, no, stats)
                group.pop(index)
                self._waiting.update(group)  # the others try again; this batch is not sent
                self._writing = False
                self._cv.notify_all()
            raise
        with self._cv:
            self._out.update(group)
            self._writing = False
            self._cv.notify_all()

    def _ready(self) -> bool:
        """Whether the waiting threads should be claimed now (called holding the lock): enough of them,
        or nobody else will join (every batch asked; or no claimed request is out and none came for a
        moment: the other threads are done, or skipped their batch)."""
        if len(self._waiting) >= self.group or self._seen >= len(self._batches):
            return True
        return not self._out and time.monotonic() - self._since >= GRACE

    def after(self, index: int, part: Any) -> None:
        ok = [[a["to"], a.get("message_id"), self.conn_id] for a in part.accepted]
        no = [[r["to"], r["code"], str(r.get("reason") or "")[:200]] for r in part.rejected]
        no += [[n, "unsubscribed", ""] for n in part.unsubscribed]
        stats = self._measure(part)
        with self._cv:
            claimed = index in self._out
            self._out.discard(index)
            # a claimed request was counted as one when claimed; its answer says how many it took
            stats["requests"] = int(part.requests) - (1 if claimed else 0)
            self._restore(ok, no, stats)
            if self._waiting and not self._out:  # the last request out is answered: the waiting may go
                self._cv.notify_all()

    def end(self) -> None:
        with self._cv:
            while self._writing:
                self._cv.wait()
            ok, no, stats = self._take()
            self._writing = True
        try:
            self._flush(ok, no, stats, [])
        except BaseException:
            with self._cv:
                self._restore(ok, no, stats)  # the next write (or none) carries them
            raise
        finally:
            with self._cv:
                self._writing = False
                self._cv.notify_all()

    def _measure(self, part: Any) -> dict[str, Any]:
        """The ``sms`` entry of one answered request: accepted, parts per message, encoding, cost."""
        stats: dict[str, Any] = {"accepted": len(part.accepted)}
        if part.accepted and part.segments:
            stats["parts"] = max(int(part.segments) // len(part.accepted), 1)
            stats["encoding"] = part.encoding
        prices = self.ledger.prices(self.conn_id) if part.accepted else None
        if prices is not None:
            from airflow_provider_sms.core.cost import DEFAULT_PRICE
            from airflow_provider_sms.core.countries import country_of

            parts = int(stats.get("parts") or 1)
            cost, unpriced = 0.0, 0
            for entry in part.accepted:
                price = prices.get(country_of(entry["to"]) or "", prices.get(DEFAULT_PRICE))
                if price is None:
                    unpriced += 1
                else:
                    cost += float(price) * parts
            stats["cost"], stats["unpriced"] = cost, unpriced
        return stats

    def _take(self) -> tuple[list[list[Any]], list[list[Any]], dict[str, Any]]:
        """Empty the buffers (holding the lock)."""
        taken = self._ok, self._no, self._stats
        self._ok, self._no, self._stats = [], [], {}
        return taken

    def _restore(self, ok: list[list[Any]], no: list[list[Any]], stats: dict[str, Any]) -> None:
        """Put outcomes back in the buffers (holding the lock): a repeat in a later write is harmless."""
        self._ok[:0], self._no[:0] = ok, no
        for name, value in stats.items():
            if name == "encoding":
                self._stats.setdefault(name, value)
            elif name == "parts":
                self._stats[name] = value
            else:
                self._stats[name] = self._stats.get(name, 0) + value

    def _flush(self, ok: list[list[Any]], no: list[list[Any]], stats: dict[str, Any], claims: list[Claim]) -> None:
        if not (claims or ok or no or any(stats.values())):
            return
        sms = {k: (round(v, 6) if k == "cost" else v) for k, v in stats.items() if v is not None}
        written = 0
        try:
            for chunk in _packed(self.tkey, ok, no, claims, sms):  # outcomes first
                self.ledger.write({"at": _now(), "conn": self.conn_id, **chunk})
                written += 1
        finally:
            self.writes += written


def _fold(view: LedgerView, chunk: dict[str, Any]) -> None:
    """Add one chunk to ``view`` (the reading rule, in chunk order)."""
    view.tries.add(_int(chunk.get("try")))
    at = _moment(chunk.get("at"))
    conn = str(chunk["conn"]) if chunk.get("conn") else None
    refs = _part(chunk, "ref")
    for tkey, numbers in _part(chunk, "claim").items():
        people = view.texts.setdefault(tkey, {})
        numbers = numbers if isinstance(numbers, list) else []
        labels = _spread(refs.get(tkey), len(numbers))
        for number, ref in zip(numbers, labels, strict=True):
            person = people.setdefault(str(number), Recipient())
            if not person.claimed:
                person.claimed, person.claimed_at, person.claimed_by = True, at, conn
            if ref is not None:
                person.ref = ref
    for tkey, rows in _part(chunk, "ok").items():
        people = view.texts.setdefault(tkey, {})
        for row in _rows(rows):
            person = people.setdefault(str(row[0]), Recipient())
            person.accepted = {"message_id": row[1], "conn_id": row[2]}
    for tkey, rows in _part(chunk, "no").items():
        people = view.texts.setdefault(tkey, {})
        for row in _rows(rows):
            person = people.setdefault(str(row[0]), Recipient())
            if person.accepted is None:
                person.code, person.reason = str(row[1]), str(row[2])
    for tkey, part in _part(chunk, "sms").items():
        if isinstance(part, dict):
            view.stats.setdefault(tkey, TextStats()).add(part, _int(chunk.get("try")))
    for name, value in _part(chunk, "note").items():
        view.notes[str(name)] = value


def _spread(refs: Any, count: int) -> list[str | None]:
    """The reference of each of ``count`` claimed numbers from ``[[ref, count], ...]`` (None where unknown)."""
    labels: list[str | None] = []
    for row in refs if isinstance(refs, list) else ():
        if isinstance(row, list) and len(row) == 2 and isinstance(row[1], int):
            labels += [str(row[0]) if row[0] is not None else None] * max(row[1], 0)
    return (labels + [None] * count)[:count]


def _part(chunk: dict[str, Any], kind: str) -> dict[str, Any]:
    value = chunk.get(kind)
    return value if isinstance(value, dict) else {}


def _rows(rows: Any) -> list[list[Any]]:
    """The three-field rows of a chunk's list; anything else (a store edited by hand) is skipped."""
    if not isinstance(rows, list):
        return []
    return [row for row in rows if isinstance(row, list) and len(row) == 3]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _moment(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _packed(
    tkey: str,
    ok: list[list[Any]],
    no: list[list[Any]],
    claims: list[Claim],
    sms: dict[str, Any],
) -> list[dict[str, Any]]:
    """Outcomes, then claims, in as few chunks as hold at most ``CHUNK_ENTRIES`` numbers each; the ``sms``
    counts go with the first chunk, and each claimed request's reference with the chunk holding it."""
    chunks: list[dict[str, Any]] = [{}]
    room = CHUNK_ENTRIES

    def place(kind: str, rows: list[Any]) -> list[Any]:
        nonlocal room
        if room == 0:
            chunks.append({})
            room = CHUNK_ENTRIES
        piece = rows[:room]
        chunks[-1].setdefault(kind, {}).setdefault(tkey, []).extend(piece)
        room -= len(piece)
        return rows[len(piece) :]

    for kind, rows in (("ok", ok), ("no", no)):
        while rows:
            rows = place(kind, rows)
    with_refs = any(ref is not None for ref, _ in claims)
    for ref, numbers in claims:
        while numbers:
            before = room or CHUNK_ENTRIES
            numbers = place("claim", numbers)
            if with_refs:  # [ref, count] in claim order, so each number's reference can be read back
                chunks[-1].setdefault("ref", {}).setdefault(tkey, []).append([ref, before - room])
    if sms:
        chunks[0]["sms"] = {tkey: sms}
    return [chunk for chunk in chunks if chunk]


def ledger_for(context: Any) -> SendLedger | None:
    """The ledger of the running task instance, in the store this Airflow offers; None outside a task."""
    ti = context.get("ti") if hasattr(context, "get") else None
    if ti is None:
        return None
    try_number = int(getattr(ti, "try_number", 1) or 1)
    accessor = context.get("task_state_store")
    if accessor is not None:
        return SendLedger(TaskStateStore(accessor), try_number=try_number)
    scope = (getattr(ti, "dag_id", None), getattr(ti, "run_id", None), getattr(ti, "task_id", None))
    if any(not isinstance(part, str) for part in scope):
        return None  # not a task instance (a test's stand-in, say): no ledger, the older rule applies
    map_index = getattr(ti, "map_index", -1)
    return SendLedger(VariableStore((*scope, -1 if map_index is None else map_index)), try_number=try_number)


def sweep_variable_ledgers(*, retention: timedelta = RETENTION, limit: int = 1000, session: Any = None) -> int:
    """Airflow 2.11: delete ledger Variables of deleted DAG runs and older than ``retention``; return how
    many. At most ``limit`` are looked at per call, oldest first, so a sweep is bounded: one query reads
    them, one asks which of their DAG runs still exist, one deletes. Each new ledger runs one."""
    import sqlalchemy as sa
    from airflow.models import DagRun, Variable  # type: ignore[attr-defined,unused-ignore]
    from airflow.utils.session import create_session

    cutoff = datetime.now(timezone.utc) - retention
    with create_session() as own:
        db = session or own
        pattern = VARIABLE_PREFIX.replace("_", "\\_") + "%"
        rows = db.execute(
            sa.select(Variable.id, Variable._val, Variable.is_encrypted)
            .where(Variable.key.like(pattern, escape="\\"))
            .order_by(Variable.id)
            .limit(limit)
        ).all()
        scopes: dict[int, tuple[str, str, datetime]] = {}
        for row_id, raw, encrypted in rows:
            try:
                value = json.loads(_plain(raw, encrypted))
                scope = (str(value["scope"][0]), str(value["scope"][1]), _aware(value["written_at"]))
            except (ValueError, KeyError, IndexError, TypeError):
                continue  # not ours to judge
            scopes[row_id] = scope
        if not scopes:
            return 0
        runs = {run for _, run, _ in scopes.values()}
        dags = {dag for dag, _, _ in scopes.values()}
        live = set(
            db.execute(
                sa.select(DagRun.dag_id, DagRun.run_id).where(DagRun.run_id.in_(runs), DagRun.dag_id.in_(dags))
            ).all()
        )
        doomed = [row_id for row_id, (dag, run, at) in scopes.items() if at < cutoff or (dag, run) not in live]
        if doomed:
            db.execute(sa.delete(Variable).where(Variable.id.in_(doomed)))
    return len(doomed)


def _plain(raw: Any, encrypted: Any) -> str:
    """A Variable's stored value as text (decrypted with Airflow's Fernet key where it was encrypted)."""
    if not encrypted:
        return str(raw)
    from airflow.models.crypto import get_fernet

    return str(get_fernet().decrypt(bytes(raw, "utf-8")).decode())


def _aware(value: Any) -> datetime:
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
