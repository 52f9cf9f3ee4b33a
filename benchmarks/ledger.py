"""The send ledger's cost, measured against the sandbox in its own process (``make bench``, fan-out part).

Anchor: a Cloudware send (one request per message) with the ledger on must keep >= 90% of the rate of a
bare pool of 16 threads, each with its own ``requests.Session``, against the same server in the same
run. The ledger here writes to a SQLite file, one committed transaction per write (``synchronous=FULL``,
so each is a real durable write, standing in for the execution API's round trip to the metadata
database); its writes are counted to show they are batched (one per 2 messages or more), never one
per message. Cellcast and Clickatell keep their batch sizes with the ledger on: 10,000 recipients in
10 and 50 requests.

The ledger holds at most the requests in flight in doubt, so a pool thread whose request was answered
waits for the write that records it and claims its next one: the fewer claims a write waits for, the
more requests stay in flight. ``group_cost`` shows that trade without the noise of a shared machine:
the pipeline and the journal with a transport that sleeps (25 ms, +-50% jitter) and a store that
sleeps 1 ms per write, each group size against the same pool with no ledger.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

TOKEN = "bench-token"  # noqa: S105 - the sandbox accepts any token
MESSAGE = "The nightly load finished"
ANCHOR = 0.90


class SqliteStore:
    """Ledger chunks in a SQLite file: each ``put`` is one committed, fsynced transaction."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS chunk (n INTEGER PRIMARY KEY, value TEXT NOT NULL)")
        self._lock = threading.Lock()
        self.writes = 0
        self.write_s: list[float] = []

    def get(self, index: int) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM chunk WHERE n = ?", (index,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, index: int, chunk: dict[str, Any]) -> None:
        started = time.perf_counter()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT INTO chunk (n, value) VALUES (?, ?)", (index, json.dumps(chunk)))
            self._db.execute("COMMIT")
        self.writes += 1
        self.write_s.append(time.perf_counter() - started)


def bare_pool(url: str, to: list[str], workers: int = 16) -> float:
    """Messages a second through 16 threads, each with its own ``requests.Session``."""
    import requests

    local = threading.local()

    def post(number: str) -> bool:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        response = session.post(
            f"{url}/v1/sms/send",
            headers={"Authorization": f"Bearer {TOKEN}"},
            json={"to": number.lstrip("+"), "message": MESSAGE},
            timeout=30,
        )
        return response.status_code == 200

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        ok = sum(pool.map(post, to))
    return ok / (time.perf_counter() - started)


def with_ledger(provider: str, to: list[str], store_dir: Path) -> tuple[float, int, int, SqliteStore]:
    """Messages a second through the hook and ``send_once`` with a ledger; accepted count and writes."""
    from airflow_provider_sms.core.delivery import send_once
    from airflow_provider_sms.hooks import get_sms_hook
    from airflow_provider_sms.state.ledger import SendLedger

    store = SqliteStore(store_dir / f"{provider}-{time.monotonic_ns()}.db")
    hook = get_sms_hook(f"bench_{provider}")
    ledger = SendLedger(store)
    started = time.perf_counter()
    result = send_once(
        ledger, to, MESSAGE, lambda todo: hook.send_sms(todo, MESSAGE), provider=provider, region=hook.default_region
    )
    wall = time.perf_counter() - started
    return len(result.accepted) / wall, len(result.accepted), store.writes, store


def group_cost(n: int = 1000, latency: float = 0.025, write: float = 0.001, reps: int = 3) -> dict[str, Any]:
    """Rate with the ledger / rate without, per claims-per-write group size (sleeping transport and store)."""
    import random

    from airflow_provider_sms.core.pipeline import Call, Outgoing, Prepared, run
    from airflow_provider_sms.core.results import SendResult
    from airflow_provider_sms.state.ledger import MemoryStore, SendLedger

    class SlowStore(MemoryStore):
        def put(self, index: int, chunk: dict[str, Any]) -> None:
            time.sleep(write)
            super().put(index, chunk)

    class Reply:
        status, body, text, attempts, endpoint = 200, {}, "", 1, "/send"

    def transport(call: Call) -> Reply:
        time.sleep(latency * random.uniform(0.5, 1.5))  # noqa: S311 - jitter, not security
        return Reply()

    def parse(batch: Any, reply: Any) -> SendResult:
        result = SendResult("sim")
        for number in batch:
            result.add_accepted(number, "id")
        return result

    def rate(journal: Any) -> float:
        to = [f"+2348{i:09d}" for i in range(n)]
        started = time.perf_counter()
        prepared = Prepared(Outgoing(MESSAGE), to, SendResult("sim"))
        run(
            prepared,
            lambda b, o: Call("POST", "/send"),
            parse,
            batch_size=1,
            transport=transport,
            max_workers=16,
            journal=journal,
        )
        return n / (time.perf_counter() - started)

    ratios: dict[str, list[float]] = {}
    writes: dict[str, int] = {}
    for _ in range(reps):
        bare = rate(None)
        for group in (2, 3, 4, 8):
            ledger = SendLedger(SlowStore(), prices={"sim": None})  # no connection to look prices up in
            journal = ledger.journal(MESSAGE, "sim", group=group)
            ratios.setdefault(str(group), []).append(rate(journal) / bare)
            writes[str(group)] = journal.writes
    row = {g: {"ratio": round(statistics.median(r), 3), "writes": writes[g]} for g, r in ratios.items()}
    print(
        f"  claims per write, {n} one-message requests of {latency * 1000:.0f} ms +-50%, {write * 1000:.0f} ms "
        "writes: " + ", ".join(f"{g}: {v['ratio']:.0%} ({v['writes']} writes)" for g, v in row.items()),
        flush=True,
    )
    return row


def ledger_anchor(remote: Any, numbers: Any, n: int = 2000, rounds: int = 11) -> dict[str, Any]:
    """The anchor (Cloudware with the ledger vs a bare 16-thread pool, measured back to back ``rounds``
    times, which one first alternating; the ratio is the median of the rounds' ratios, so drift in a
    shared machine's load between and within rounds cancels out) and the batch sizes of Cellcast and
    Clickatell with the ledger on."""
    to = numbers(n, "cloudware")
    ours, bare, writes, write_ms = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="sms-ledger-bench-") as tmp:
        for round_number in range(rounds):
            for ledger_turn in (False, True) if round_number % 2 == 0 else (True, False):
                remote.reset(rate_limit=False)
                if not ledger_turn:
                    bare.append(bare_pool(remote.url, to))
                    continue
                rate, accepted, count, store = with_ledger("cloudware", to, Path(tmp))
                assert accepted == n, f"the ledger run accepted {accepted} of {n}"
                ours.append(rate)
                writes.append(count)
                write_ms += [s * 1000 for s in store.write_s]
        batches: dict[str, int] = {}
        for provider in ("cellcast", "clickatell"):
            remote.reset(rate_limit=True)
            _rate, accepted, _count, _store = with_ledger(provider, numbers(10_000, provider), Path(tmp))
            batches[provider] = remote.stats()["total_requests"]
    ratio = statistics.median(o / b for o, b in zip(ours, bare, strict=True))
    row = {
        "recipients": n,
        "rounds": rounds,
        "ledger_msg_per_s": round(statistics.median(ours), 1),
        "bare_pool_msg_per_s": round(statistics.median(bare), 1),
        "ratio": round(ratio, 3),
        "round_ratios": [round(o / b, 3) for o, b in zip(ours, bare, strict=True)],
        "anchor": ANCHOR,
        "met": ratio >= ANCHOR,
        "ledger_writes": int(statistics.median(writes)),
        "write_ms_median": round(statistics.median(write_ms), 2),
        "requests_10k": batches,
        "group_cost": group_cost(),
    }
    print(
        f"  cloudware N={n}: with the ledger {row['ledger_msg_per_s']} msg/s vs a bare 16-thread pool "
        f"{row['bare_pool_msg_per_s']} msg/s = {ratio:.0%} (anchor >= {ANCHOR:.0%}); {row['ledger_writes']} "
        f"ledger writes (median {row['write_ms_median']} ms each); 10,000 recipients: cellcast "
        f"{batches['cellcast']} requests, clickatell {batches['clickatell']}",
        flush=True,
    )
    return row


def markdown(row: dict[str, Any]) -> list[str]:
    """The results.md lines for the anchor."""
    from airflow_provider_sms.state.ledger import MESSAGES_PER_WRITE

    return [
        "",
        f"Send ledger on (each write a committed SQLite transaction): Cloudware to {row['recipients']:,} "
        f"recipients at {row['ledger_msg_per_s']} msg/s vs {row['bare_pool_msg_per_s']} msg/s for a bare pool "
        f"of 16 threads with a `requests.Session` each, same server, same run (median of {row['rounds']} paired "
        "rounds): "
        f"**{row['ratio']:.0%}** (anchor >= {row['anchor']:.0%}: {'met' if row['met'] else 'NOT met'}); "
        f"{row['ledger_writes']} ledger writes for {row['recipients']:,} messages (median "
        f"{row['write_ms_median']} ms each). 10,000 recipients with the ledger on: Cellcast in "
        f"{row['requests_10k']['cellcast']} requests, Clickatell in {row['requests_10k']['clickatell']}.",
        *(
            [
                "Claims per ledger write (a pool thread waits for the write that claims its next request), "
                "16 one-message requests of 25 ms +-50% and 1 ms writes, no shared-machine noise: "
                + ", ".join(f"{g}: {v['ratio']:.0%} of the rate without a ledger" for g, v in cost.items())
                + f" (the ledger uses {MESSAGES_PER_WRITE})."
            ]
            if (cost := row.get("group_cost"))
            else []
        ),
    ]
