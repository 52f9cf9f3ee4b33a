"""``make bench``, opt-outs: what checking a send against a register of 100,000 numbers costs.

The register lives where it does in production, as Airflow Variables in a migrated SQLite metadata
database (a fresh AIRFLOW_HOME): 100,000 numbers opted out over the last year (their events and
per-number keys, as ``OptOutRegister.add`` writes them) and 100 more this hour; a send has 10,000 recipients, 1,000 of
them in the register. Measured:

1. on Airflow 3.3, a real task run by ``airflow dags test`` (the Task SDK through the execution API, as a
   worker reaches Variables): the first check ever (no snapshot yet: it lists every event and writes the
   snapshot), then checks that read the snapshot and list the hours since (the steady state), a
   20-recipient check, and what asking per key costs (Airflow 3.0-3.2, which cannot list from a task);
2. the ORM path (the API server, the CLI, every process on Airflow 2.11): the same checks, and a whole
   dry run of ``CloudwareHook.send_sms`` to the 10,000 with and without the register.

Target: checking 10,000 recipients takes at most 1 s in the steady state. Prints a table and writes
``benchmarks/opt_outs_results.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REGISTER = 100_000
RECIPIENTS = 10_000
OVERLAP = 1_000
TARGET_SECONDS = 1.0


def opted_out_numbers() -> list[str]:
    return [f"+614{i:08d}" for i in range(REGISTER)]


def recipients() -> list[str]:
    start = REGISTER - OVERLAP
    return [f"+614{i:08d}" for i in range(start, start + RECIPIENTS)]


TASK_DAG = textwrap.dedent(
    """
    import json, os, statistics, time
    from datetime import datetime
    from pathlib import Path

    from airflow.sdk import chain, dag, task


    def numbers(count):
        start = {register} - {overlap}
        return [f"+614{{i:08d}}" for i in range(start, start + count)]


    def report(name, **values):
        Path(os.environ["OPT_OUT_BENCH_OUT"], f"{{name}}.json").write_text(json.dumps(values))


    @dag(schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
    def opt_out_bench():
        @task
        def check(name: str, count: int, rounds: int, per_key: bool = False) -> None:
            from airflow_provider_sms.state import opt_outs

            if per_key:  # what Airflow 3.0-3.2 does: it cannot list Variable keys from a task
                opt_outs.keys_listable = lambda: False
            runs, found = [], set()
            for _ in range(rounds):
                register = opt_outs.OptOutRegister()  # a new one each time: no reading reused
                began = time.perf_counter()
                found = register.opted_out(numbers(count))
                runs.append(time.perf_counter() - began)
            report(name, count=count, found=len(found), seconds=statistics.median(runs))

        chain(
            check.override(task_id="first")("first", {recipients}, 1),
            check.override(task_id="steady")("steady", {recipients}, 5),
            check.override(task_id="small")("small", 20, 5),
            check.override(task_id="per_key")("per_key", 20, 3, per_key=True),
        )


    opt_out_bench()
    """
).format(register=REGISTER, overlap=OVERLAP, recipients=RECIPIENTS)


def seed(env: dict[str, str]) -> float:
    """Migrate the database and write the register's Variables (as ``OptOutRegister.add`` would): the
    100,000 numbers opted out over the last year, 100 more this hour."""
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(HERE.parent)!r})
        from benchmarks.opt_outs import opted_out_numbers
        from airflow.models.variable import Variable
        from airflow.utils.session import create_session
        from airflow_provider_sms.state.opt_outs import OptOut, event_variables
        from datetime import datetime, timedelta, timezone
        now = datetime.now(timezone.utc)
        rows = []
        for i, n in enumerate(opted_out_numbers()):  # spread over the last year, as a real register is
            at = now - timedelta(days=1, seconds=(i * 7919) % 31_536_000, microseconds=(i * 104_729) % 1_000_000)
            for key, val in event_variables(OptOut(n, at, "bench"), written=at + timedelta(seconds=2)).items():
                rows.append({{"key": key, "val": val, "is_encrypted": False}})
        for i in range(100):
            entry = OptOut(f"+615{{i:08d}}", now, "bench")
            rows += [{{"key": k, "val": v, "is_encrypted": False}} for k, v in event_variables(entry).items()]
        began = time.perf_counter()
        with create_session() as session:
            session.execute(Variable.__table__.insert(), rows)
        print(time.perf_counter() - began)
        """
    )
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True)  # noqa: S603
    done = subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True, text=True)  # noqa: S603
    return float(done.stdout.strip().splitlines()[-1])


def orm_path(env: dict[str, str]) -> dict[str, Any]:
    script = textwrap.dedent(
        f"""
        import json, statistics, sys, time
        sys.path.insert(0, {str(HERE.parent)!r})
        from benchmarks.opt_outs import recipients
        from airflow_provider_sms.hooks.cloudware import CloudwareHook
        from airflow_provider_sms.state.opt_outs import SNAPSHOT, OptOutRegister

        numbers = recipients()
        store = OptOutRegister().store
        for key in store.keys(SNAPSHOT):  # the task's run wrote one: measure the first check again
            store.delete(key)
        began = time.perf_counter()
        OptOutRegister().opted_out(numbers)
        first = time.perf_counter() - began
        checks = []
        for _ in range(5):
            began = time.perf_counter()
            found = OptOutRegister().opted_out(numbers)
            checks.append(time.perf_counter() - began)

        def dry_run(respect):
            hook = CloudwareHook("bench", respect_opt_out=respect)
            began = time.perf_counter()
            result = hook.send_sms(numbers, "The nightly load finished", dry_run=True)
            return time.perf_counter() - began, result

        dry_run(True), dry_run(False)  # warm: the first send of a process connects and loads the ORM
        with_register, without = [], []
        for _ in range(5):
            seconds, result = dry_run(True)
            with_register.append(seconds)
            without.append(dry_run(False)[0])
        print(json.dumps({{
            "found": len(found),
            "first_check_seconds": first,
            "check_seconds": statistics.median(checks),
            "dry_run_unsubscribed": len(result.unsubscribed),
            "dry_run_seconds_with_register": statistics.median(with_register),
            "dry_run_seconds_without": statistics.median(without),
        }}))
        """
    )
    env = {
        **env,
        "AIRFLOW_CONN_BENCH": json.dumps({"conn_type": "cloudware", "host": "http://127.0.0.1:9", "password": "t"}),
    }
    done = subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True, text=True)  # noqa: S603
    return json.loads(done.stdout.strip().splitlines()[-1])


def task_path(env: dict[str, str], home: Path) -> dict[str, Any] | None:
    try:
        import airflow
    except ImportError:
        return None
    if tuple(int(p) for p in airflow.__version__.split(".")[:2]) < (3, 3):
        return None
    dags = home / "dags"
    dags.mkdir(exist_ok=True)
    (dags / "opt_out_bench.py").write_text(TASK_DAG)
    out = home / "out"
    out.mkdir(exist_ok=True)
    env = {**env, "AIRFLOW__CORE__DAGS_FOLDER": str(dags), "OPT_OUT_BENCH_OUT": str(out)}
    airflow_bin = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow_bin), "dags", "reserialize"], env=env, check=True, capture_output=True)  # noqa: S603
    done = subprocess.run(  # noqa: S603
        [str(airflow_bin), "dags", "test", "opt_out_bench"], env=env, capture_output=True, text=True, timeout=600
    )
    results = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    if set(results) != {"first", "steady", "small", "per_key"}:
        raise RuntimeError(f"the task run did not report every check: {done.stdout[-1500:]}{done.stderr[-1500:]}")
    per_key = results["per_key"]["seconds"] / results["per_key"]["count"]
    return {
        "first_check_seconds": results["first"]["seconds"],
        "check_seconds": results["steady"]["seconds"],
        "found": results["steady"]["found"],
        "small_seconds": results["small"]["seconds"],
        "per_key_seconds": per_key,
        "without_listing_10k_estimate_seconds": per_key * RECIPIENTS,
    }


def main() -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="sms-opt-out-bench-"))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
    }
    env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
    (home / "dags").mkdir()
    seconds = seed(env)
    results: dict[str, Any] = {"register": REGISTER, "recipients": RECIPIENTS, "seed_seconds": seconds}
    results["task"] = task_path(env, home)
    results["orm"] = orm_path(env)
    results["target_seconds"] = TARGET_SECONDS
    checks = [results["orm"]["check_seconds"]]
    if results["task"]:
        checks.append(results["task"]["check_seconds"])
    results["meets_target"] = max(checks) <= TARGET_SECONDS
    (HERE / "opt_outs_results.json").write_text(json.dumps(results, indent=2) + "\n")
    orm, task = results["orm"], results["task"]
    print(f"Opt-out register: {REGISTER:,} numbers; a send to {RECIPIENTS:,} recipients ({OVERLAP:,} opted out)")
    if task:
        print(
            f"  task (Task SDK, execution API): {task['check_seconds']:.3f} s a check (snapshot + recent hours), "
            f"found {task['found']:,}; the first check ever (lists every event, writes the snapshot): "
            f"{task['first_check_seconds']:.3f} s; 20 recipients: {task['small_seconds']:.3f} s"
        )
        per_key, estimate = task["per_key_seconds"] * 1000, task["without_listing_10k_estimate_seconds"]
        print(f"  task, per key (Airflow 3.0-3.2): {per_key:.2f} ms a key; 10,000 recipients: ~{estimate:.1f} s")
    print(
        f"  ORM (SQLite): {orm['check_seconds']:.3f} s a check, found {orm['found']:,}; the first check ever: "
        f"{orm['first_check_seconds']:.3f} s"
    )
    extra = orm["dry_run_seconds_with_register"] - orm["dry_run_seconds_without"]
    print(
        f"  dry run of the whole send, ORM: {orm['dry_run_seconds_with_register']:.3f} s with the register, "
        f"{orm['dry_run_seconds_without']:.3f} s without (+{extra:.3f} s)"
    )
    print(f"  target: <= {TARGET_SECONDS:g} s a check: {'met' if results['meets_target'] else 'MISSED'}")
    return results


if __name__ == "__main__":
    main()  # a report, like run.py: the target's outcome is printed and in the JSON, not the exit status
