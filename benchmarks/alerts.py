"""Alert grouping measured (``make bench``, or ``python benchmarks/alerts.py``): storms, races, recovery.

Everything runs against Airflow's own Variables (the ORM on a throwaway, migrated SQLite metadata
database) and the sandbox on loopback; texts are counted where they arrive, in the sandbox, per phone.

- Storm: 100 failure callbacks across 20 task keys in 60 s of simulated time, 3 phones, a 10-minute
  window, then the digest trigger's rounds every 30 s for 75 minutes; with ``max_per_hour`` 10 and
  without a cap. Anchors: at most 20 first alerts + digests per window per phone, ``max_per_hour``
  never exceeded in any hour.
- Race: two (and four) real OS processes fire a failure callback for the same key at the same moment
  (a barrier); anchor: one text per key.
- Recovery: fail, fail, succeed -> one alert and one RESOLVED; succeed alone -> nothing.

Writes ``benchmarks/alerts.json`` and ``benchmarks/alerts.md``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HERE = Path(__file__).resolve().parent
PHONES = ["+61400000001", "+61400000002", "+61400000003"]
T0 = datetime(2030, 1, 1, 2, 0, tzinfo=timezone.utc)


def setup_airflow() -> None:
    """A throwaway AIRFLOW_HOME with a migrated SQLite database; set before Airflow is imported."""
    home = tempfile.mkdtemp(prefix="airflow-sms-alert-bench-")
    os.environ["AIRFLOW_HOME"] = home
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(home) / "dags")
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True)  # noqa: S603 - our own venv


def use_sandbox(url: str) -> None:
    conn = {"conn_type": "cellcast", "host": url, "password": "bench-token"}  # the sandbox accepts any token
    os.environ["AIRFLOW_CONN_CELLCAST_DEFAULT"] = json.dumps(conn)


class CountingKeys:
    """Airflow's Variables (``VariableKeys``), counting the calls each callback makes."""

    def __init__(self) -> None:
        from airflow_provider_sms.state.variables import VariableKeys

        self.inner = VariableKeys()
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return method(*args, **kwargs)

        return counted


def context(task_id: str, *, try_number: int, state: str = "failed", error: str = "boom") -> dict[str, Any]:
    from airflow_provider_sms._compat import AIRFLOW_V_3

    if AIRFLOW_V_3:
        from airflow.sdk import DAG
    else:
        from airflow.models.dag import DAG  # type: ignore[no-redef]
    ti = SimpleNamespace(task_id=task_id, try_number=try_number, state=state, dag_id="storm", map_index=-1)
    ctx = {"dag": DAG("storm", schedule=None), "ti": ti, "task_instance": ti, "run_id": "scheduled__1"}
    if state == "failed":
        ctx["exception"] = RuntimeError(error)
    return ctx


def outbound(sandbox: Any) -> list[dict[str, Any]]:
    return [m for m in sandbox.store.all(provider="cellcast") if m["direction"] == "out"]


def most_in_any_hour(stamps: list[datetime]) -> int:
    stamps = sorted(stamps)
    return max((sum(1 for t in stamps if s <= t < s + timedelta(hours=1)) for s in stamps), default=0)


def storm(sandbox: Any, max_per_hour: int | None) -> dict[str, Any]:
    from airflow_provider_sms.notifications import sms
    from airflow_provider_sms.state import alerts

    store = CountingKeys()
    sms.alert_store = lambda: store  # type: ignore[assignment,return-value]
    alerts.AlertGroups(store.inner).forget()
    sandbox.reset()
    clock = [T0]
    alerts.utcnow = lambda: clock[0]  # simulated time
    notifier = sms.SmsNotifier(sms_conn_id="cellcast_default", to=PHONES, max_per_hour=max_per_hour)
    sent_at: dict[str, list[datetime]] = {p: [] for p in PHONES}
    kinds: dict[str, Counter[str]] = {p: Counter() for p in PHONES}
    seen = 0

    def collect() -> None:
        nonlocal seen
        rows = outbound(sandbox)
        for row in rows[seen:]:
            sent_at[row["phone"]].append(clock[0])
            kinds[row["phone"]]["first alert" if row["text"].startswith("Airflow FAILED") else "digest"] += 1
        seen = len(rows)

    durations = []
    for i in range(100):
        clock[0] = T0 + timedelta(seconds=0.6 * i)
        started = time.perf_counter()
        notifier(context(f"load_{i % 20}", try_number=1 + i // 20, error=f"boom {i}"))
        durations.append(time.perf_counter() - started)
        collect()
    callback_calls = dict(store.calls)
    rounds = []
    for step in range(1, 151):  # the trigger's rounds: every 30 s for 75 minutes
        clock[0] = T0 + timedelta(seconds=30 * step)
        started = time.perf_counter()
        sms.send_due_digests(now=clock[0])
        rounds.append(time.perf_counter() - started)
        collect()
    left = len(store.inner.keys(alerts.PREFIX))
    alerts.AlertGroups(store.inner).sweep(T0 + timedelta(hours=3))
    return {
        "max_per_hour": max_per_hour,
        "texts_per_phone": {p: len(v) for p, v in sent_at.items()},
        "first_alerts_per_phone": {p: kinds[p]["first alert"] for p in PHONES},
        "digests_per_phone": {p: kinds[p]["digest"] for p in PHONES},
        "most_in_any_hour": max(most_in_any_hour(v) for v in sent_at.values()),
        "callback_ms_median": round(statistics.median(durations) * 1000, 2),
        "callback_ms_max": round(max(durations) * 1000, 2),
        "store_calls_per_callback": round(sum(callback_calls.values()) / 100, 1),
        "digest_round_ms_median": round(statistics.median(rounds) * 1000, 2),
        "keys_after_digests": left,
        "keys_after_sweep": len(store.inner.keys(alerts.PREFIX)),
    }


def fire(key: str, barrier: Any) -> None:
    """One process's failure callback for ``key``, released with the others'."""
    from airflow_provider_sms.notifications.sms import SmsNotifier

    notifier = SmsNotifier(sms_conn_id="cellcast_default", to=PHONES[0], key=key)
    ctx = context("load", try_number=1, error=f"from {multiprocessing.current_process().name}")
    barrier.wait(120)
    notifier(ctx)


def race(sandbox: Any, processes: int, rounds: int) -> dict[str, Any]:
    from airflow_provider_sms.state.alerts import AlertGroups
    from airflow_provider_sms.state.variables import VariableKeys

    AlertGroups(VariableKeys()).forget()
    sandbox.reset()
    spawn = multiprocessing.get_context("spawn")
    per_key = []
    for n in range(rounds):
        before = len(outbound(sandbox))
        barrier = spawn.Barrier(processes)
        workers = [spawn.Process(target=fire, args=(f"race-{processes}-{n}", barrier)) for _ in range(processes)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(300)
        per_key.append(len(outbound(sandbox)) - before)
    return {"processes": processes, "rounds": rounds, "texts_per_key": dict(Counter(per_key))}


def recovery(sandbox: Any) -> dict[str, Any]:
    from airflow_provider_sms.notifications import sms
    from airflow_provider_sms.state import alerts
    from airflow_provider_sms.state.variables import VariableKeys

    sms.alert_store = VariableKeys  # type: ignore[assignment]
    alerts.AlertGroups(VariableKeys()).forget()
    sandbox.reset()
    notifier = sms.SmsNotifier(sms_conn_id="cellcast_default", to=PHONES[0])
    clock = [T0]
    alerts.utcnow = lambda: clock[0]
    for try_number in (1, 2):
        notifier(context("load", try_number=try_number))
        clock[0] += timedelta(minutes=2)
    notifier(context("load", try_number=3, state="success"))
    texts = [m["text"] for m in outbound(sandbox)]
    notifier(context("other", try_number=1, state="success"))
    return {
        "fail_fail_succeed": {
            "alerts": sum(t.startswith("Airflow FAILED") for t in texts),
            "resolved": sum(t.startswith("RESOLVED") for t in texts),
        },
        "succeed_alone_texts": len(outbound(sandbox)) - len(texts),
    }


def to_markdown(result: dict[str, Any]) -> str:
    lines = [
        f"Measured {result['measured_at']} on Airflow {result['airflow']} (Variables: SQLite through the ORM).",
        "",
        "| storm (100 callbacks, 20 keys, 60 s, 3 phones) | texts / phone | first alerts | digests "
        "| most in any hour | callback median / max | store calls / callback | keys left after sweep |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in result["storm"]:
        cap = run["max_per_hour"] if run["max_per_hour"] is not None else "none"
        lines.append(
            f"| max_per_hour {cap} | {max(run['texts_per_phone'].values())} "
            f"| {max(run['first_alerts_per_phone'].values())} | {max(run['digests_per_phone'].values())} "
            f"| {run['most_in_any_hour']} | {run['callback_ms_median']} / {run['callback_ms_max']} ms "
            f"| {run['store_calls_per_callback']} | {run['keys_after_sweep']} |"
        )
    lines += ["", "| race: processes at once, one key | rounds | texts per key (count of rounds) |", "|---|---:|---|"]
    for run in result["race"]:
        lines.append(f"| {run['processes']} | {run['rounds']} | {run['texts_per_key']} |")
    rec = result["recovery"]
    lines += [
        "",
        f"Recovery: fail, fail, succeed -> {rec['fail_fail_succeed']['alerts']} alert, "
        f"{rec['fail_fail_succeed']['resolved']} RESOLVED; succeed alone -> {rec['succeed_alone_texts']} texts.",
    ]
    return "\n".join(lines) + "\n"


def main() -> dict[str, Any]:
    setup_airflow()
    from airflow_provider_sms.sandbox.server import SandboxServer

    with SandboxServer() as sandbox:
        use_sandbox(sandbox.url)
        import airflow

        result: dict[str, Any] = {
            "measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "airflow": airflow.__version__,
            "storm": [storm(sandbox, 10), storm(sandbox, None)],
            "race": [race(sandbox, 2, 5), race(sandbox, 4, 3)],
            "recovery": recovery(sandbox),
        }
    checks = {
        "storm: <= 20 first alerts + digests per window per phone": all(
            max(r["first_alerts_per_phone"].values()) <= 20 for r in result["storm"]
        ),
        "storm: max_per_hour never exceeded": result["storm"][0]["most_in_any_hour"] <= 10,
        "race: one text per key": all(set(r["texts_per_key"]) == {1} for r in result["race"]),
        "recovery: one alert, one RESOLVED, nothing alone": result["recovery"]
        == {"fail_fail_succeed": {"alerts": 1, "resolved": 1}, "succeed_alone_texts": 0},
    }
    result["checks"] = checks
    (HERE / "alerts.json").write_text(json.dumps(result, indent=2) + "\n")
    (HERE / "alerts.md").write_text(to_markdown(result))
    print(to_markdown(result))
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    if not all(checks.values()):
        raise SystemExit(1)
    return result


if __name__ == "__main__":
    main()
