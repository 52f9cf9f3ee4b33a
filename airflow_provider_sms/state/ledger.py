"""The send ledger: which recipients each try of a task got accepted, kept where the next try can read it.

A send writes, as it goes, *claims* (recipients whose request is about to go out) and *outcomes*
(accepted with the provider's message id and the connection that took it, or refused with a code),
so a retry of the same task instance, even after the worker was killed, sends only to recipients no
earlier try got accepted for, and knows which requests may have gone out without an answer (claimed,
no outcome: *in doubt*). Entries hold numbers, ids, codes and a short hash of the text, never the
text itself.

Where it is kept (``ledger_for``), always through Airflow's own means, reachable from any worker:

- Airflow 3.3+: the task state store (``context["task_state_store"]``, the execution API), scoped by
  Airflow to dag, run, task and map index; it survives retries and clears, is deleted with its DAG run
  (a foreign key with ``ON DELETE CASCADE``), and each key expires after ``RETENTION``.
- Airflow 2.11 and 3.0-3.2: Airflow Variables (the ORM on 2.11, the Task SDK on 3.x), one per chunk,
  named from a hash of dag, run, task and map index; ``sweep_variable_ledgers`` deletes those of
  deleted runs and those older than ``RETENTION``.

The ledger is append-only: each write is a new numbered chunk (``sms_send_ledger/<n>``), so a write
never races another and a reader reads chunks 0, 1, ... until one is missing. Writes are batched: a
claim covers a window of batches (the pool's worth of requests), is written half a window ahead of
the requests so that the pool does not wait for it, and carries every outcome recorded since the
previous write: a 10,000-recipient Cloudware send makes one write per 16 messages, never one per
message. After a crash, at most three windows are in doubt (claimed ahead, in flight, answered but
not yet written), until the provider is asked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
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
class LedgerView:
    """Everything earlier tries recorded, per text (``text_key``) and recipient."""

    texts: dict[str, dict[str, Recipient]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)  # name -> the latest value ``SendLedger.note`` wrote
    chunks: int = 0
    tries: set[int] = field(default_factory=set)

    def of(self, message: str) -> dict[str, Recipient]:
        return self.texts.get(text_key(message), {})


class SendLedger:
    """The ledger of one task instance: read once when a try starts, appended to as it sends.

    :param store: where the chunks live (``ledger_for`` picks it).
    :param try_number: the current try, recorded with each chunk (for the log and the result).
    """

    def __init__(self, store: ChunkStore, *, try_number: int = 1) -> None:
        self.store = store
        self.try_number = try_number
        self._lock = threading.Lock()
        self._next: int | None = None
        self._view: LedgerView | None = None

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
            view.tries.add(int(chunk.get("try") or 0))
            at = _moment(chunk.get("at"))
            for tkey, numbers in _part(chunk, "claim").items():
                people = view.texts.setdefault(tkey, {})
                for number in numbers if isinstance(numbers, list) else ():
                    person = people.setdefault(str(number), Recipient())
                    if not person.claimed:
                        person.claimed, person.claimed_at = True, at
                        person.claimed_by = str(chunk["conn"]) if chunk.get("conn") else None
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
            for name, value in _part(chunk, "note").items():
                view.notes[str(name)] = value
            index += 1
        view.chunks = index
        self._next = index
        return view

    def write(self, chunk: dict[str, Any]) -> None:
        """Append one chunk (claims and outcomes); durable when this returns."""
        with self._lock:
            if self._next is None:
                self._view = self._read()
            assert self._next is not None
            index = self._next
            self._next += 1
        self.store.put(index, {"try": self.try_number, **chunk})

    def note(self, name: str, value: Any) -> None:
        """Record a small JSON value (a reference, an id; never message text) for later tries to read in
        ``view().notes[name]``; durable when this returns."""
        self.write({"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "note": {name: value}})

    def journal(self, message: str, conn_id: str, *, window: int | None = None) -> Journal:
        """The journal one send of ``message`` through ``conn_id`` writes to (see ``core.pipeline``).

        :param window: batches claimed per write; None: as many as the send's pool runs at once.
        """
        return Journal(self, text_key(message), conn_id, window=window)


class Journal:
    """What ``core.pipeline.run`` calls around each request of one send: claims and outcomes, batched.

    ``before(i)`` returns once batch ``i`` is claimed durably. Claims run half a window ahead: the batch
    that leaves fewer than half a window claimed beyond it writes the next window's claim (``window``
    batches, the pool's width) with every outcome recorded since the last write, while the other
    threads go on; the rest return at once. ``after(i, part)`` only buffers; ``end()`` writes what is
    left.
    """

    def __init__(self, ledger: SendLedger, tkey: str, conn_id: str, *, window: int | None = None) -> None:
        self.ledger = ledger
        self.tkey = tkey
        self.conn_id = conn_id
        self.fixed_window = window
        self.window = max(int(window or 1), 1)
        self._batches: Sequence[Sequence[str]] = ()
        self._claimed = 0  # batches [0, _claimed) are claimed durably
        self._write_lock = threading.Lock()
        self._buffer_lock = threading.Lock()
        self._ok: list[list[Any]] = []
        self._no: list[list[Any]] = []
        self.writes = 0

    def begin(self, batches: Sequence[Sequence[str]], width: int = 1) -> None:
        """A send of ``batches`` starts, ``width`` requests at a time."""
        self._batches = batches
        self._claimed = 0
        self.window = max(int(self.fixed_window or width), 1)

    def before(self, index: int) -> None:
        # Claims run ahead of the requests: when fewer than half a window of claimed batches is left
        # beyond ``index``, this thread claims the next window (one write) while the others go on with
        # batches already claimed; only a batch past the claimed ones waits for the write.
        if index + self.window // 2 < self._claimed or self._claimed >= len(self._batches):
            return
        with self._write_lock:
            if index + self.window // 2 < self._claimed or self._claimed >= len(self._batches):
                return
            end = min(len(self._batches), max(index, self._claimed) + self.window)
            numbers = [n for batch in self._batches[self._claimed : end] for n in batch]
            self._flush(claim=numbers)
            self._claimed = max(self._claimed, end)

    def after(self, index: int, part: Any) -> None:
        ok = [[a["to"], a.get("message_id"), self.conn_id] for a in part.accepted]
        no = [[r["to"], r["code"], str(r.get("reason") or "")[:200]] for r in part.rejected]
        no += [[n, "unsubscribed", ""] for n in part.unsubscribed]
        with self._buffer_lock:
            self._ok += ok
            self._no += no

    def end(self) -> None:
        with self._write_lock:
            self._flush(claim=[])

    def _flush(self, *, claim: list[str]) -> None:
        with self._buffer_lock:
            ok, no = self._ok, self._no
            self._ok, self._no = [], []
        if not (claim or ok or no):
            return
        at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        written = 0
        try:
            for chunk in _packed([("ok", ok), ("no", no), ("claim", claim)], self.tkey):  # outcomes first
                self.ledger.write({"at": at, "conn": self.conn_id, **chunk})
                written += 1
        except BaseException:
            with self._buffer_lock:  # not all written: keep the outcomes for the next write (a repeat is harmless)
                self._ok[:0], self._no[:0] = ok, no
            raise
        finally:
            self.writes += written


def _part(chunk: dict[str, Any], kind: str) -> dict[str, Any]:
    value = chunk.get(kind)
    return value if isinstance(value, dict) else {}


def _rows(rows: Any) -> list[list[Any]]:
    """The three-field rows of a chunk's list; anything else (a store edited by hand) is skipped."""
    if not isinstance(rows, list):
        return []
    return [row for row in rows if isinstance(row, list) and len(row) == 3]


def _moment(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _packed(parts: list[tuple[str, list[Any]]], tkey: str) -> list[dict[str, Any]]:
    """``parts`` in order, in as few chunks as hold at most ``CHUNK_ENTRIES`` entries each."""
    chunks: list[dict[str, Any]] = []
    room = 0
    for kind, rows in parts:
        start = 0
        while start < len(rows):
            if room == 0:
                chunks.append({})
                room = CHUNK_ENTRIES
            piece = rows[start : start + room]
            chunks[-1][kind] = {tkey: piece}
            start += len(piece)
            room -= len(piece)
    return chunks


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
    many. At most ``limit`` are looked at per call, so a sweep is bounded; each new ledger runs one."""
    from airflow.models import DagRun, Variable  # type: ignore[attr-defined,unused-ignore]
    from airflow.utils.session import create_session

    cutoff = datetime.now(timezone.utc) - retention
    removed = 0
    with create_session() as own:
        db = session or own
        rows = db.query(Variable).filter(Variable.key.like(f"{VARIABLE_PREFIX}%")).limit(limit).all()
        for row in rows:
            try:
                value = json.loads(row.val)
                dag_id, run_id = value["scope"][0], value["scope"][1]
                written = datetime.fromisoformat(value["written_at"])
            except (ValueError, KeyError, IndexError, TypeError):
                continue  # not ours to judge
            run_exists = db.query(DagRun.id).filter(DagRun.dag_id == dag_id, DagRun.run_id == run_id).first()
            if written < cutoff or run_exists is None:
                db.delete(row)
                removed += 1
    return removed
