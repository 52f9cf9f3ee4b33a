"""Waiting at scale: N reply waiters on one inbox, run the way Airflow's triggerer runs them.

``independent``: each trigger's ``run()`` polls on its own (Airflow before 3.3, or sharing turned off).
``shared``: the triggers subscribe through Airflow 3.3's ``SharedStreamManager`` and read one poll per
inbox through ``filter_shared_stream``. One configuration per process (so RSS is the waiters' own), against
a sandbox in another process that answers the Cloudware listing with injected latency. Prints one JSON
object: polls per interval, peak TCP connections to the sandbox, RSS per waiter, the worst event-loop
stall, and the latency from a reply landing to its waiter's event.

    python benchmarks/waiting.py --url http://127.0.0.1:PORT --mode shared --n 1000 --interval 2

``restart``: a triggerer restart. N waiters that deferred ``--hours`` ago (their ``since``s spread over a
minute) all subscribe at once to a fresh ``SharedStreamManager``, over an inbox holding replies from
the whole period; counts the inbox requests in the first 12 s and the worst event-loop stall.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MEASURED_INTERVALS = 3


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def connections_to(port: int) -> int:
    """Established TCP connections from any local socket to ``port`` (this process's client side)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01":
                count += 1
    return count


def listing_polls(control: Any, url: str) -> int:
    return int(control.get(f"{url}/_sandbox/stats", timeout=30).json()["requests"].get("GET /v1/sms/messages", 0))


def warm_up() -> None:
    """Load what any waiter loads (HTTP, phone numbers, the hook), so RSS measures the waiters alone."""
    from airflow_provider_sms.hooks import get_sms_hook

    hook = get_sms_hook("bench_wait")
    _ = hook.client, hook.default_region
    hook.close()


async def stall_monitor(worst: list[float], stop: asyncio.Event) -> None:
    """Sleep 10 ms at a time and keep the worst lateness: how long the loop was blocked."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(0.01)
        worst[0] = max(worst[0], loop.time() - before - 0.01)


async def measure(url: str, mode: str, n: int, interval: float) -> dict[str, Any]:
    import requests

    from airflow_provider_sms.triggers.inbound import InboundSmsTrigger

    control = requests.Session()
    control.headers["Connection"] = "close"  # no connection of the benchmark's own stays open to be counted
    port = urlsplit(url).port or 80
    numbers = [f"+6141{i:07d}" for i in range(n)]
    since = (datetime.now(timezone.utc) - timedelta(seconds=1)).isoformat()
    timeout_at = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    triggers = [
        InboundSmsTrigger(
            "bench_wait",
            from_numbers=[number],
            match=["yes"],
            since=since,
            poll_interval=interval,
            timeout_at=timeout_at,
        )
        for number in numbers
    ]
    matched: dict[int, float] = {}
    manager: Any = None
    warm_up()
    rss_before = rss_bytes()

    async def consume(index: int, events: Any) -> None:
        async for _ in events:
            matched[index] = time.monotonic()
            return

    tasks = []
    if mode == "shared":
        from airflow.triggers.shared_stream import SharedStreamManager

        manager = SharedStreamManager()
        for index, trigger in enumerate(triggers):
            stream = manager.subscribe(trigger_id=index, trigger=trigger, key=trigger.shared_stream_key())
            tasks.append(asyncio.create_task(consume(index, trigger.filter_shared_stream(stream))))
    else:
        tasks = [asyncio.create_task(consume(i, t.run())) for i, t in enumerate(triggers)]

    await asyncio.sleep(interval * 1.5)  # every waiter started and polled once
    polls_before = listing_polls(control, url)
    worst, stop = [0.0], asyncio.Event()
    monitor = asyncio.create_task(stall_monitor(worst, stop))
    peak_connections = 0
    window_end = time.monotonic() + interval * MEASURED_INTERVALS
    while time.monotonic() < window_end:
        peak_connections = max(peak_connections, connections_to(port))
        await asyncio.sleep(0.2)
    polls = listing_polls(control, url) - polls_before
    rss_per_waiter = (rss_bytes() - rss_before) / n

    replies = [{"provider": "cloudware", "from": number, "text": "yes"} for number in numbers]
    landed = time.monotonic()
    await asyncio.to_thread(lambda: control.post(f"{url}/_sandbox/inbound", json={"messages": replies}, timeout=60))
    deadline = landed + interval * 4
    while len(matched) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    stop.set()
    await monitor
    latencies = [matched[i] - landed for i in matched]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if manager is not None:
        await manager.stop_all()
    return {
        "mode": mode,
        "waiters": n,
        "interval_s": interval,
        "polls_per_interval": round(polls / MEASURED_INTERVALS, 1),
        "peak_tcp_connections": peak_connections,
        "rss_per_waiter_kib": round(rss_per_waiter / 1024, 1),
        "worst_loop_stall_ms": round(worst[0] * 1000, 1),
        "matched": len(matched),
        "latency_median_s": round(statistics.median(latencies), 2) if latencies else None,
        "latency_max_s": round(max(latencies), 2) if latencies else None,
    }


RESTART_WINDOW_S = 12.0


async def restart(url: str, n: int, interval: float, hours: float) -> dict[str, Any]:
    import requests
    from airflow.triggers.shared_stream import SharedStreamManager

    from airflow_provider_sms.triggers.inbound import InboundSmsTrigger

    control = requests.Session()
    control.headers["Connection"] = "close"
    now = datetime.now(timezone.utc)
    deferred_at = now - timedelta(hours=hours)
    # the inbox holds replies from the whole period (from phones nobody waits for): the catch-up pages
    seeded = [
        {
            "provider": "cloudware",
            "from": f"+6149{i:07d}",
            "text": "hello",
            "received_at": (deferred_at + timedelta(seconds=hours * 3600 * i / 300)).isoformat(),
        }
        for i in range(300)
    ]
    control.post(f"{url}/_sandbox/inbound", json={"messages": seeded}, timeout=60).raise_for_status()
    timeout_at = (now + timedelta(hours=1)).isoformat()
    triggers = [
        InboundSmsTrigger(
            "bench_wait",
            from_numbers=[f"+6141{i:07d}"],
            match=["yes"],
            since=(deferred_at + timedelta(milliseconds=60 * i)).isoformat(),
            poll_interval=interval,
            timeout_at=timeout_at,
        )
        for i in range(n)
    ]
    warm_up()
    worst, stop = [0.0], asyncio.Event()
    monitor = asyncio.create_task(stall_monitor(worst, stop))
    await asyncio.sleep(0.05)
    polls_before = listing_polls(control, url)
    manager = SharedStreamManager()

    async def consume(events: Any) -> None:
        async for _ in events:
            return

    started = time.monotonic()
    tasks = []
    for index, trigger in enumerate(triggers):  # as Airflow's triggerer creates them: one per loop turn
        await asyncio.sleep(0)
        stream = manager.subscribe(trigger_id=index, trigger=trigger, key=trigger.shared_stream_key())
        tasks.append(asyncio.create_task(consume(trigger.filter_shared_stream(stream))))
    await asyncio.sleep(max(RESTART_WINDOW_S - (time.monotonic() - started), 0.0))
    requests_made = listing_polls(control, url) - polls_before
    stop.set()
    await monitor
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await manager.stop_all()
    return {
        "mode": "restart",
        "waiters": n,
        "deferred_hours_ago": hours,
        "interval_s": interval,
        "requests_first_12s": requests_made,
        "worst_loop_stall_ms": round(worst[0] * 1000, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the sandbox, e.g. http://127.0.0.1:8765")
    parser.add_argument("--mode", choices=("independent", "shared", "restart"), required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--hours", type=float, default=6.0, help="restart: how long ago the waiters deferred")
    args = parser.parse_args()
    conn = {"conn_type": "cloudware", "host": args.url, "password": "bench-token", "extra": {"country_code": "61"}}
    os.environ["AIRFLOW_CONN_BENCH_WAIT"] = json.dumps(conn)
    import logging

    logging.disable(logging.WARNING)
    if args.mode == "restart":
        result = asyncio.run(restart(args.url, args.n, args.interval, args.hours))
    else:
        result = asyncio.run(measure(args.url, args.mode, args.n, args.interval))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
