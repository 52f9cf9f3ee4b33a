"""``make bench``: this provider against the loop users write by hand, measured side by side in one run.

1. Fan-out: one message to N recipients per provider, through the hook and ``SendSmsOperator``,
   against the sandbox with 20 ms of latency per request; the baseline is one ``requests.post`` per
   recipient, sequential, no session (the providers' own samples). The baseline is measured in full up
   to ``--baseline-max`` recipients and extrapolated linearly (it is sequential) beyond, flagged so.
   The send ledger's anchor (``ledger.py``): Cloudware with the ledger on keeps >= 90% of the rate of
   a bare pool of 16 threads with a ``requests.Session`` each, same server, same run.
2. CPU per recipient with the network stubbed out, and peak memory at N = 100,000.
3. Extra import time of the DAG-facing modules over ``airflow.sdk`` alone, in fresh processes.
4. Inbound polling with 100,000 stored messages and 10 new ones since the cursor.
5. Waiting at scale: N reply waiters on one inbox run as the triggerer runs them, each polling on its own
   vs one shared poll per inbox (Airflow 3.3), each configuration in its own process (``waiting.py``).
6. Webhooks: calls recorded as asset events by a real API server at 50 a second, 10% of them repeated
   (``webhooks.py``; Airflow 3).

Writes ``benchmarks/results.json``, ``benchmarks/results.md`` and ``benchmarks/fanout.png``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HERE = Path(__file__).resolve().parent
LATENCY_MS = 20
TOKEN = "bench-token"  # noqa: S105 - the sandbox accepts any token

TARGETS = {
    "cellcast": {"max_requests_10k": 10, "min_ratio": 50},
    "clickatell": {"max_requests_10k": 50, "min_ratio": 50},
    "cloudware": {"max_requests_10k": None, "min_ratio": 8},
}
BASELINE_REQUEST: dict[str, Callable[[str, str], tuple[str, dict[str, str], dict[str, Any]]]] = {
    # what each provider's own sample does for a single recipient
    "cellcast": lambda url, to: (
        f"{url}/api/v1/gateway",
        {"Authorization": f"Bearer {TOKEN}"},
        {"message": "The nightly load finished", "contacts": [to]},
    ),
    "clickatell": lambda url, to: (
        f"{url}/messages",
        {"Authorization": TOKEN},
        {"content": "The nightly load finished", "to": [to.lstrip("+")]},
    ),
    "cloudware": lambda url, to: (
        f"{url}/v1/sms/send",
        {"Authorization": f"Bearer {TOKEN}"},
        {"to": to.lstrip("+"), "message": "The nightly load finished"},
    ),
}


def numbers(n: int, provider: str) -> list[str]:
    if provider == "cellcast":  # Cellcast sends to Australian mobiles only
        return [f"+614{i:08d}" for i in range(n)]
    return [f"+2348{i:09d}" for i in range(n)]


class RemoteSandbox:
    """The sandbox in a process of its own (as a real provider is on another machine), driven over HTTP."""

    def __init__(self) -> None:
        import socket

        import requests

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "airflow_provider_sms.sandbox", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._http = requests.Session()
        for _ in range(200):
            try:
                self._http.get(f"{self.url}/_sandbox/stats", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("the sandbox process did not start")

    SENDS = (("POST", "/api/v1/gateway"), ("POST", "/messages"), ("POST", "/v1/sms/send"))

    def reset(self, *, rate_limit: bool, latency_on: tuple[str, str] | None = None) -> None:
        """A fresh sandbox with ``LATENCY_MS`` on every send endpoint (or only on ``latency_on``)."""
        self._http.post(f"{self.url}/_sandbox/reset", json={}, timeout=10)
        self._http.post(
            f"{self.url}/_sandbox/settings", json={"cellcast_rate_limit": 15 if rate_limit else None}, timeout=10
        )
        for method, path in [latency_on] if latency_on else self.SENDS:
            fault = {"method": method, "path": path, "count": None, "latency_ms": LATENCY_MS}
            self._http.post(f"{self.url}/_sandbox/faults", json=fault, timeout=10)

    def stats(self) -> dict[str, Any]:
        return dict(self._http.get(f"{self.url}/_sandbox/stats", timeout=10).json())

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=10)


def set_env(server: Any) -> None:
    for conn_type in ("cellcast", "clickatell", "cloudware"):
        conn = {"conn_type": conn_type, "host": server.url, "password": TOKEN, "extra": {"country_code": "61"}}
        os.environ[f"AIRFLOW_CONN_BENCH_{conn_type.upper()}"] = json.dumps(conn)


def run_ours(server: Any, provider: str, n: int, via: str) -> dict[str, Any]:
    from airflow_provider_sms.hooks import get_sms_hook
    from airflow_provider_sms.operators.send import SendSmsOperator

    server.reset(rate_limit=True)
    to = numbers(n, provider)
    started = time.perf_counter()
    if via == "hook":
        result = get_sms_hook(f"bench_{provider}").send_sms(to, "The nightly load finished").to_dict()
    else:
        op = SendSmsOperator(
            task_id="bench", sms_conn_id=f"bench_{provider}", to=to, message="The nightly load finished"
        )
        result = op.execute({"ti": None})  # type: ignore[arg-type]
    wall = time.perf_counter() - started
    stats = server.stats()
    return {
        "provider": provider,
        "via": via,
        "recipients": n,
        "accepted": len(result["accepted"]),
        "requests": stats["total_requests"],
        "peak_in_flight": max(stats["peak_in_flight"].values()),
        "wall_s": round(wall, 3),
        "messages_per_s": round(len(result["accepted"]) / wall, 1),
    }


def run_baseline(server: Any, provider: str, n: int) -> dict[str, Any]:
    import requests

    server.reset(rate_limit=False)  # no 429s for the baseline: that only flatters it
    accepted = 0
    started = time.perf_counter()
    for number in numbers(n, provider):
        url, headers, body = BASELINE_REQUEST[provider](server.url, number)
        response = requests.post(url, headers=headers, json=body, timeout=30)  # a new connection each time
        accepted += response.status_code in (200, 202)
    wall = time.perf_counter() - started
    return {
        "provider": provider,
        "via": "baseline",
        "recipients": n,
        "accepted": accepted,
        "requests": server.stats()["total_requests"],
        "wall_s": round(wall, 3),
        "messages_per_s": round(accepted / wall, 1),
        "extrapolated": False,
    }


def fanout(server: Any, sizes: list[int], baseline_max: int) -> list[dict[str, Any]]:
    rows = []
    for provider in ("cellcast", "clickatell", "cloudware"):
        run_ours(server, provider, 10, "hook")  # warm-up: phonenumbers metadata, connection lookup
        measured: dict[str, Any] | None = None
        for n in sizes:
            for via in ("hook", "operator"):
                rows.append(run_ours(server, provider, n, via))
                print(
                    f"  {provider:<10} {via:<8} N={n:>6}: {rows[-1]['messages_per_s']:>9} msg/s, "
                    f"{rows[-1]['requests']} requests",
                    flush=True,
                )
            if n <= baseline_max:
                base = run_baseline(server, provider, n)
            else:
                measured = measured or run_baseline(server, provider, baseline_max)
                wall = measured["wall_s"] * n / measured["recipients"]
                base = {
                    **measured,
                    "recipients": n,
                    "accepted": n,
                    "requests": n,
                    "wall_s": round(wall, 1),
                    "extrapolated": True,
                    "measured_recipients": measured["recipients"],
                }
            rows.append(base)
            print(
                f"  {provider:<10} baseline N={n:>6}: {base['messages_per_s']:>9} msg/s"
                f"{' (extrapolated)' if base['extrapolated'] else ''}",
                flush=True,
            )
    return rows


class StubClient:
    """Stands in for the HTTP client: serializes the request and parses a pre-built answer, no network."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    def redact(self, text: str) -> str:
        return text.replace(TOKEN, "***")  # what the real client does with the connection's token

    def send(self, call: Any) -> Any:
        from airflow_provider_sms.core.http import HttpReply

        body = json.dumps(call.json)
        key = body[:0] + json.dumps((call.json.get("contacts") or call.json.get("to") or [""])[:1])
        text = self.answers[key]
        return HttpReply(200, json.loads(text), text, 1, f"{call.method} {call.path}")


def stub_answers(provider: str, to: list[str], batch: int) -> dict[str, str]:
    answers = {}
    for start in range(0, len(to), batch):
        part = to[start : start + batch]
        if provider == "cellcast":
            key = json.dumps(part[:1])
            body = {
                "status": True,
                "data": {
                    "queueResponse": [
                        {"Contact": n[3:], "MessageId": f"{i:024x}", "Result": "Message added to queue."}
                        for i, n in enumerate(part)
                    ]
                },
            }
        elif provider == "clickatell":
            key = json.dumps([part[0].lstrip("+")])
            body = {
                "messages": [
                    {"apiMessageId": f"{i:032x}", "accepted": True, "to": n.lstrip("+")} for i, n in enumerate(part)
                ]
            }
        else:
            key = json.dumps(part[0].lstrip("+")[:1])
            body = {"status": "success", "data": {"id": "1"}}
        answers[key] = json.dumps(body)
    return answers


def cpu_per_recipient() -> list[dict[str, Any]]:
    from airflow_provider_sms.core.phone import _normalize_cached
    from airflow_provider_sms.hooks import get_sms_hook

    rows = []
    for provider in ("cellcast", "clickatell", "cloudware"):
        for n in (10_000, 100_000):
            to = numbers(n, provider)
            hook = get_sms_hook(f"bench_{provider}", max_workers=1)
            hook.__dict__["client"] = StubClient(stub_answers(provider, to, hook.batch_limit))
            hook.send_sms(to[:10], "warm-up")
            cpu = float("inf")
            for _ in range(3 if n <= 10_000 else 1):
                _normalize_cached.cache_clear()  # every number parsed afresh, as in a new task
                gc.collect()
                started = time.process_time()
                result = hook.send_sms(to, "The nightly load finished")
                cpu = min(cpu, time.process_time() - started)
            assert len(result.accepted) == n, (provider, len(result.accepted), result.rejected[:2])
            _normalize_cached.cache_clear()
            tracemalloc.start()
            hook.send_sms(to, "The nightly load finished")
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            rows.append(
                {
                    "provider": provider,
                    "recipients": n,
                    "cpu_s": round(cpu, 3),
                    "us_per_recipient": round(cpu / n * 1e6, 1),
                    "peak_mib": round(peak / 2**20, 1),
                }
            )
            print(
                f"  {provider:<10} N={n:>6}: {rows[-1]['us_per_recipient']} us/recipient, "
                f"peak {rows[-1]['peak_mib']} MiB",
                flush=True,
            )
    return rows


IMPORT_PROBE = """
import sys, time
import airflow.sdk
from airflow.sdk import BaseOperator, BaseSensorOperator, BaseNotifier
started = time.perf_counter()
from airflow_provider_sms.operators.send import SendSmsOperator
from airflow_provider_sms.sensors.inbound import InboundSmsSensor
from airflow_provider_sms.notifications.sms import SmsNotifier
extra = time.perf_counter() - started
heavy = sorted(m for m in ("phonenumbers", "requests", "airflow_provider_sms.sandbox", "starlette") if m in sys.modules)
print(extra, ",".join(heavy))
"""


def import_cost(runs: int) -> dict[str, Any]:
    """The probe in fresh processes, with the package's bytecode compiled as an installed package has it
    (``PYTHONDONTWRITEBYTECODE`` would otherwise make every run measure compiling the source)."""
    import compileall

    compileall.compile_dir(str(HERE.parent / "airflow_provider_sms"), quiet=1)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    samples, heavy = [], ""
    for _ in range(runs):
        out = subprocess.run(  # noqa: S603
            [sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, check=True, env=env
        )
        value, _, heavy = out.stdout.strip().splitlines()[-1].partition(" ")
        samples.append(float(value) * 1000)
    result = {
        "runs": runs,
        "median_ms": round(statistics.median(samples), 2),
        "max_ms": round(max(samples), 2),
        "heavy_modules_loaded": heavy.split(",") if heavy else [],
    }
    print(f"  extra import time: median {result['median_ms']} ms over {runs} fresh processes", flush=True)
    return result


def inbound_polling(server: Any) -> list[dict[str, Any]]:
    from airflow_provider_sms._compat import PokeReturnValue
    from airflow_provider_sms.sensors.inbound import InboundSmsSensor

    rows = []
    for provider in ("cloudware", "cellcast"):
        server.store.reset()
        server.faults.clear()
        old = datetime(2026, 1, 1, tzinfo=timezone.utc)
        server.store.add_messages(
            direction="in",
            provider=provider,
            phones=["+61400000002"] * 100_000,
            text="YES",
            status="received",
            ts=old.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        )
        cursor = datetime.now(timezone.utc)
        time.sleep(1.1)  # the new messages come after the cursor, at the providers' one-second precision
        for i in range(10):
            server.store.add_message(
                direction="in",
                provider=provider,
                phone="+61400000001",
                text="YES" if i == 9 else "thinking",
                status="received",
            )
        server.faults.reset_stats()
        sensor = InboundSmsSensor(
            task_id="bench",
            sms_conn_id=f"bench_{provider}",
            from_numbers="0400000001",
            match=["yes"],
            since=cursor.isoformat(),
        )
        started = time.perf_counter()
        outcome = sensor.poke({"dag_run": None})
        wall = time.perf_counter() - started
        assert isinstance(outcome, PokeReturnValue), "the new reply was not found"
        requests_made = server.faults.stats()["total_requests"]
        rows.append(
            {
                "provider": provider,
                "stored": 100_010,
                "new": 10,
                "requests": requests_made,
                "poke_ms": round(wall * 1000, 1),
            }
        )
        print(
            f"  {provider:<10} 100,000 stored + 10 new: {requests_made} request(s), {rows[-1]['poke_ms']} ms",
            flush=True,
        )
    return rows


WAITERS = (10, 100, 1000)
WAIT_INTERVAL_S = 2.0
WAIT_TARGETS = {"polls_per_interval": 1, "peak_tcp_connections": 4, "rss_per_waiter_kib": 20, "worst_loop_stall_ms": 50}


def waiting_at_scale(remote: Any) -> list[dict[str, Any]]:
    import importlib.util

    modes = ["independent"]
    if importlib.util.find_spec("airflow.triggers.shared_stream") is not None:
        modes.append("shared")
    rows = []
    for n in WAITERS:
        for mode in modes:
            remote.reset(rate_limit=True, latency_on=("GET", "/v1/sms/messages"))
            command = [sys.executable, str(HERE / "waiting.py"), "--url", remote.url, "--mode", mode, "--n", str(n)]
            command += ["--interval", str(WAIT_INTERVAL_S)]
            out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=300).stdout  # noqa: S603
            rows.append(json.loads(out.strip().splitlines()[-1]))
            row = rows[-1]
            print(
                f"  {mode:<11} N={n:>5}: {row['polls_per_interval']} polls/interval, "
                f"{row['peak_tcp_connections']} TCP, {row['rss_per_waiter_kib']} KiB/waiter, "
                f"stall {row['worst_loop_stall_ms']} ms, latency max {row['latency_max_s']} s "
                f"({row['matched']}/{n} matched)",
                flush=True,
            )
    if "shared" in modes:  # a triggerer restart: 1,000 waiters that deferred 6 h ago resume together
        remote.reset(rate_limit=True, latency_on=("GET", "/v1/sms/messages"))
        command = [sys.executable, str(HERE / "waiting.py"), "--url", remote.url, "--mode", "restart", "--n", "1000"]
        out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=300).stdout  # noqa: S603
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(
            f"  restart     N= 1000, 6 h old: {rows[-1]['requests_first_12s']} inbox requests in the first 12 s, "
            f"stall {rows[-1]['worst_loop_stall_ms']} ms",
            flush=True,
        )
    return rows


WEBHOOK_TARGETS = {"latency_p95_ms": 50, "lost": 0, "duplicated": 0}


def webhooks_bench() -> dict[str, Any] | None:
    import importlib.util

    if importlib.util.find_spec("airflow.api_fastapi") is None:
        return None  # Airflow 2.11: no webhook receiver
    command = [sys.executable, str(HERE / "webhooks.py")]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600).stdout  # noqa: S603
    row = json.loads(out.strip().splitlines()[-1])
    print(
        f"  {row['calls']} calls ({row['repeated_calls']} repeats) after {row['existing_events']:,} events, "
        f"{row['database']}, {row['api_workers']} API workers, at {row['achieved_per_s']}/s: median "
        f"{row['latency_median_ms']} ms, p95 {row['latency_p95_ms']} ms; lost {row['lost']}, "
        f"duplicated {row['duplicated']}, failed {row['failed_calls']}",
        flush=True,
    )
    return dict(row)


def write_outputs(data: dict[str, Any]) -> None:
    fan = data["fanout"]
    for row in fan:
        if row["via"] != "baseline":
            base = next(
                b
                for b in fan
                if b["via"] == "baseline" and (b["provider"], b["recipients"]) == (row["provider"], row["recipients"])
            )
            row["ratio_to_baseline"] = round(row["messages_per_s"] / base["messages_per_s"], 1)
    (HERE / "results.json").write_text(json.dumps(data, indent=2) + "\n")
    lines = [
        f"Measured {data['measured_at']} on {data['machine']} (Airflow {data['airflow']}), "
        f"{LATENCY_MS} ms of injected latency per request.",
        "",
        "| provider | N | ours (hook) msg/s | requests | ours (operator) msg/s | baseline msg/s | baseline requests "
        "| ratio (hook/baseline) | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for provider, target in TARGETS.items():
        for n in sorted({r["recipients"] for r in fan if r["provider"] == provider}):
            pick = {r["via"]: r for r in fan if r["provider"] == provider and r["recipients"] == n}
            ratio = pick["hook"]["ratio_to_baseline"]
            req_goal = (
                f", <= {target['max_requests_10k']} requests" if target["max_requests_10k"] and n == 10_000 else ""
            )
            mark = "*" if pick["baseline"]["extrapolated"] else ""
            lines.append(
                f"| {provider} | {n:,} | {pick['hook']['messages_per_s']:,} | {pick['hook']['requests']} | "
                f"{pick['operator']['messages_per_s']:,} | {pick['baseline']['messages_per_s']:,}{mark} | "
                f"{pick['baseline']['requests']:,} | {ratio:,.1f}x | >= {target['min_ratio']}x{req_goal} |"
            )
    lines += [
        "",
        "\\* baseline extrapolated linearly from a measured run of `--baseline-max` recipients "
        "(it is sequential, so its time grows linearly); `--full-baseline` measures it.",
        "",
        "| provider | N | CPU us/recipient (network stubbed) | peak memory |",
        "|---|---:|---:|---:|",
    ]
    for row in data["cpu"]:
        lines.append(
            f"| {row['provider']} | {row['recipients']:,} | {row['us_per_recipient']} | {row['peak_mib']} MiB |"
        )
    imp = data["import_cost"]
    lines += [
        "",
        f"Extra import time of the operator, sensor and notifier modules over `airflow.sdk`, bytecode "
        f"compiled as an installed package has it: median {imp['median_ms']} ms over {imp['runs']} fresh "
        f"processes (max {imp['max_ms']} ms); heavy modules loaded at parse time: "
        f"{', '.join(imp['heavy_modules_loaded']) or 'none'}.",
        "",
        "| provider | stored messages | new since cursor | requests per poke | poke time |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in data["inbound"]:
        lines.append(
            f"| {row['provider']} | {row['stored']:,} | {row['new']} | {row['requests']} | {row['poke_ms']} ms |"
        )
    lines += [
        "",
        f"Waiting at scale: N `InboundSmsTrigger`s on one inbox (Cloudware listing, {LATENCY_MS} ms latency), "
        f"poll interval {WAIT_INTERVAL_S:g} s; `independent` = each trigger's `run()` polls on its own, "
        "`shared` = through Airflow 3.3's `SharedStreamManager` (one poll per inbox). Targets at N = 1,000 "
        "(shared): 1 poll per interval, <= 4 TCP connections, <= 20 KiB RSS per waiter, worst loop stall "
        "<= 50 ms, reply-to-event latency <= one interval.",
        "",
        "| mode | waiters | polls per interval | TCP connections | RSS per waiter | worst loop stall "
        "| latency median / max | matched |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in data.get("waiting", []):
        if row["mode"] == "restart":
            continue
        lines.append(
            f"| {row['mode']} | {row['waiters']:,} | {row['polls_per_interval']} | {row['peak_tcp_connections']} | "
            f"{row['rss_per_waiter_kib']} KiB | {row['worst_loop_stall_ms']} ms | "
            f"{row['latency_median_s']} s / {row['latency_max_s']} s | {row['matched']:,} |"
        )
    for row in data.get("waiting", []):
        if row["mode"] == "restart":
            lines += [
                "",
                f"Triggerer restart: {row['waiters']:,} waiters that deferred {row['deferred_hours_ago']:g} h ago "
                f"resume together: {row['requests_first_12s']} inbox requests in the first 12 s, worst loop stall "
                f"{row['worst_loop_stall_ms']} ms (targets: <= 30 requests, <= 50 ms).",
            ]
    if data.get("ledger"):
        from ledger import markdown as ledger_markdown  # beside this script

        lines += ledger_markdown(data["ledger"])
    hooks = data.get("webhooks")
    if hooks:
        lines += [
            "",
            f"Webhooks: {hooks['calls']:,} Cloudware reply calls, one after another, to a real Airflow API server "
            f"({hooks['database']} metadata database, {hooks['api_workers']} workers) with "
            f"{hooks['existing_events']:,} earlier events on the asset, {hooks['repeated_calls']} of the calls "
            "repeats of an earlier one; latency from sending to the 200 that follows the committed asset event. "
            "Targets: p95 <= 50 ms, nothing lost, nothing duplicated.",
            "",
            "| calls | achieved rate | latency median / p95 / max | failed | lost | duplicated | events |",
            "|---:|---:|---:|---:|---:|---:|---:|",
            f"| {hooks['calls']:,} | {hooks['achieved_per_s']}/s | {hooks['latency_median_ms']} / "
            f"{hooks['latency_p95_ms']} / {hooks['latency_max_ms']} ms | {hooks['failed_calls']} | {hooks['lost']} | "
            f"{hooks['duplicated']} | {hooks['events']:,} |",
        ]
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    plot(fan)


def plot(fan: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    colours = {"cellcast": "tab:blue", "clickatell": "tab:orange", "cloudware": "tab:green"}
    for provider, colour in colours.items():
        for via, style in (("hook", "-o"), ("baseline", "--x")):
            pts = sorted(
                (r["recipients"], r["messages_per_s"]) for r in fan if r["provider"] == provider and r["via"] == via
            )
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                style,
                color=colour,
                label=f"{provider} {'airflow-provider-sms' if via == 'hook' else 'requests.post loop'}",
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("recipients")
    ax.set_ylabel("messages per second (log)")
    ax.set_title(f"One message to N recipients, {LATENCY_MS} ms latency per request")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "fanout.png", dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="recipient counts for the fan-out")
    parser.add_argument("--baseline-max", type=int, default=1000, help="largest N to measure the baseline in full")
    parser.add_argument("--full-baseline", action="store_true", help="measure the baseline at every N (slow)")
    parser.add_argument("--import-runs", type=int, default=15)
    parser.add_argument(
        "--only",
        choices=("waiting", "webhooks", "ledger"),
        help="re-measure one section only, keeping the other results",
    )
    args = parser.parse_args()
    if args.only:
        data = json.loads((HERE / "results.json").read_text())
        if args.only == "ledger":
            remote = RemoteSandbox()
            try:
                set_env(remote)
                print("Send ledger anchor (Cloudware vs a bare 16-thread pool):", flush=True)
                from ledger import ledger_anchor  # beside this script

                data["ledger"] = ledger_anchor(remote, numbers)
            finally:
                remote.stop()
        elif args.only == "waiting":
            remote = RemoteSandbox()
            try:
                print("Waiting at scale (reply waiters on one inbox):", flush=True)
                data["waiting"] = waiting_at_scale(remote)
            finally:
                remote.stop()
            data["waiting_targets"] = WAIT_TARGETS
        else:
            print("Webhooks (a real API server):", flush=True)
            data["webhooks"] = webhooks_bench()
            data["webhook_targets"] = WEBHOOK_TARGETS
        write_outputs(data)
        print((HERE / "results.md").read_text())
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]

    import logging

    logging.getLogger("airflow_provider_sms").setLevel(logging.ERROR)
    import airflow

    from airflow_provider_sms.sandbox.server import SandboxServer

    set_env(SimpleNamespace(url="https://unused.invalid"))
    print("CPU per recipient, network stubbed:", flush=True)
    cpu = cpu_per_recipient()
    remote = RemoteSandbox()
    try:
        set_env(remote)
        print("Fan-out (hook, operator, baseline), sandbox in its own process:", flush=True)
        fan = fanout(remote, sizes, max(sizes) if args.full_baseline else args.baseline_max)
        print("Send ledger anchor (Cloudware vs a bare 16-thread pool):", flush=True)
        from ledger import ledger_anchor  # beside this script

        ledger = ledger_anchor(remote, numbers)
        print("Waiting at scale (reply waiters on one inbox):", flush=True)
        waiting = waiting_at_scale(remote)
    finally:
        remote.stop()
    with SandboxServer() as server:
        set_env(server)
        print("Inbound polling:", flush=True)
        inbound = inbound_polling(server)
    print("Import cost:", flush=True)
    imports = import_cost(args.import_runs)
    print("Webhooks (a real API server):", flush=True)
    webhooks = webhooks_bench()
    data = {
        "measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "airflow": airflow.__version__,
        "latency_ms": LATENCY_MS,
        "fanout": fan,
        "ledger": ledger,
        "cpu": cpu,
        "import_cost": imports,
        "inbound": inbound,
        "waiting": waiting,
        "webhooks": webhooks,
        "targets": TARGETS,
        "waiting_targets": WAIT_TARGETS,
        "webhook_targets": WEBHOOK_TARGETS,
    }
    write_outputs(data)
    print((HERE / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
