"""``make demo``: the example DAGs end to end in a real Airflow, against the local sandbox.

Starts the sandbox on 127.0.0.1 and one Airflow (API server, scheduler, DAG processor, triggerer, with
the LocalExecutor on a throwaway SQLite database under ``.demo/``), all started once and shared by every
step. It triggers each example DAG through Airflow's REST API, answers the text messages as the
recipients would (the approver says YES, the team answers the survey), waits for every run, and prints
what each task did, what the sandbox sent and received, and how many polls the waiting sensors cost:
the deferred sensors share one poll of the inbox in the triggerer. It stops everything it started;
with ``--serve`` it keeps the sandbox up for a person to browse.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / ".demo"
AIRFLOW_HOME = HOME / "airflow"
TOKEN = "sandbox-token"  # noqa: S105 - the sandbox accepts any token; this one is for show
APPROVER = "+61400000001"
# Who answers what, and how many seconds after being asked: the sensors wait across several polls.
APPROVER_ANSWER = {APPROVER: ("YES", 6)}
TEAM_ANSWERS = {
    "+61400000011": ("YES", 4),
    "+61400000012": ("No, sorry", 9),
    "+61400000013": ("yes!", 14),
    "+61400000014": ("NO", 19),
}
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
SENSOR_POLL_INTERVAL = 5  # poke_interval of the example sensors

RUNS: list[tuple[str, dict[str, Any] | None, str, str]] = [
    ("sms_alerting", {"simulate_failure": True}, "failed", "the nightly load fails and the on-call phone is texted"),
    ("scheduled_reminders", None, "success", "personal reminders held by Clickatell until 09:00 local time"),
    ("mms_campaign", None, "success", "an MMS with an image through Cellcast"),
    ("cloudware_queue", None, "success", "a newsletter queued with Cloudware for recipients from XCom"),
    ("reply_approval", None, "success", "ask for approval, wait (deferred) for the reply, branch on it"),
    ("reply_survey", None, "success", "ask a team, four deferred sensors wait on one shared inbox poll"),
]


def free_port(preferred: int = 0) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Airflow:
    """One Airflow for the whole demo: its components in their own process groups, and its REST API."""

    def __init__(self, sandbox_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(AIRFLOW_HOME),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the runs the demo triggers
        }
        for conn_type in ("cellcast", "clickatell", "cloudware"):
            conn = {"conn_type": conn_type, "host": sandbox_url, "password": TOKEN, "extra": {"country_code": "61"}}
            self.env[f"AIRFLOW_CONN_{conn_type.upper()}_DEFAULT"] = json.dumps(conn)
        self.binary = str(Path(sys.executable).with_name("airflow"))
        self.processes: list[subprocess.Popen[bytes]] = []
        self.http = requests.Session()

    def start(self) -> None:
        subprocess.run([self.binary, "db", "migrate"], env=self.env, check=True, capture_output=True)  # noqa: S603
        for component in COMPONENTS:
            log = (HOME / "logs" / f"{component}.log").open("wb")
            process = subprocess.Popen(  # noqa: S603
                [self.binary, component], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            self.processes.append(process)

    def wait_until_ready(self, dag_ids: list[str], timeout: float = 150) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process, component in zip(self.processes, COMPONENTS, strict=True):
                if process.poll() is not None:
                    raise RuntimeError(f"airflow {component} exited; see .demo/logs/{component}.log")
            try:
                health = self.http.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
                listed = self.http.get(f"{self.url}/api/v2/dags", params={"limit": 100}, timeout=5).json()
            except (requests.RequestException, ValueError):
                time.sleep(1)
                continue
            parsed = {d["dag_id"] for d in listed.get("dags", [])}
            healthy = all(health.get(c, {}).get("status") == "healthy" for c in ("scheduler", "triggerer"))
            if healthy and set(dag_ids) <= parsed:
                return
            time.sleep(1)
        raise RuntimeError("Airflow did not become ready; see the component logs under .demo/logs/")

    def trigger(self, dag_id: str, conf: dict[str, Any] | None) -> str:
        # A logical date, as the UI's trigger form gives one: the examples template {{ ds }}.
        now = datetime.now(timezone.utc).isoformat()
        answer = self.http.post(
            f"{self.url}/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": now, "conf": conf or {}}, timeout=30
        )
        answer.raise_for_status()
        return str(answer.json()["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        answer = self.http.get(f"{self.url}/api/v2/dags/{dag_id}/dagRuns/{run_id}", timeout=30)
        return str(answer.json().get("state"))

    def task_states(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        answer = self.http.get(
            f"{self.url}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100}, timeout=30
        )
        return list(answer.json().get("task_instances", []))

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def answer_when_asked(store: Any, stop: threading.Event, answers: dict[str, tuple[str, float]], asked_by: str) -> None:
    """Reply as each phone in ``answers``, its given seconds after a message containing ``asked_by`` reached it."""
    pending = dict(answers)
    asked_at: dict[str, float] = {}
    while pending and not stop.wait(0.5):
        for phone, (text, delay) in list(pending.items()):
            if phone not in asked_at:
                if any(m["direction"] == "out" and asked_by in m["text"] for m in store.all(phone=phone)):
                    asked_at[phone] = time.monotonic()
            elif time.monotonic() - asked_at[phone] >= delay:
                store.add_message(direction="in", provider="cloudware", phone=phone, text=text, status="received")
                print(f"    ({phone} replied {text!r})", flush=True)
                del pending[phone]


def what_tasks_did(dag_id: str, run_id: str) -> list[str]:
    """Our provider's log lines from the run's task logs: what each task sent or received."""
    lines = []
    for path in sorted((AIRFLOW_HOME / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}").glob("task_id=*/**/*.log")):
        task = path.relative_to(AIRFLOW_HOME / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}").parts[0][8:]
        for raw in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if "airflow_provider_sms" in str(entry.get("logger", "")) and entry.get("level") in ("info", "warning"):
                lines.append(f"{task}: {entry.get('event')}")
    return lines


def summarize(server: Any, polls: int, waited: float) -> None:
    rows = server.store.all()
    print("\nWhat the sandbox saw:")
    print(f"  {'provider':<11} {'sent':>5} {'scheduled':>9} {'received':>8} {'SMS parts':>9}")
    for provider in ("cellcast", "clickatell", "cloudware"):
        mine = [r for r in rows if r["provider"] == provider]
        sent = [r for r in mine if r["direction"] == "out"]
        print(
            f"  {provider:<11} {len(sent):>5} {sum(1 for r in sent if r['status'] == 'scheduled'):>9} "
            f"{sum(1 for r in mine if r['direction'] == 'in'):>8} {sum(r['segments'] or 0 for r in sent):>9}"
        )
    print(
        f"\nFive deferred sensors (reply_approval's and reply_survey's four) waited in one triggerer on the same "
        f"Cloudware inbox: it was polled {polls} time(s) in the {waited:.0f}s of the runs, one shared poll every "
        f"{SENSOR_POLL_INTERVAL}s while anyone waited, not one poll per sensor."
    )


def wait_for_runs(airflow: Airflow, runs: dict[str, str], timeout: float = 240) -> dict[str, str]:
    states: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while len(states) < len(runs) and time.monotonic() < deadline:
        for dag_id, run_id in runs.items():
            if dag_id not in states:
                state = airflow.run_state(dag_id, run_id)
                if state in ("success", "failed"):
                    states[dag_id] = state
                    print(f"  {dag_id}: {state}", flush=True)
        time.sleep(1)
    return states


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="keep the sandbox running after the demo")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    from airflow_provider_sms.sandbox.server import SandboxServer

    shutil.rmtree(HOME, ignore_errors=True)
    (HOME / "logs").mkdir(parents=True)
    started = time.monotonic()
    server = SandboxServer(port=free_port(args.port)).start()
    print(f"SMS sandbox running at {server.url}", flush=True)
    airflow = Airflow(server.url)
    stop = threading.Event()
    repliers: list[Callable[[], None]] = [
        lambda: answer_when_asked(server.store, stop, APPROVER_ANSWER, "Reply YES to publish"),
        lambda: answer_when_asked(server.store, stop, TEAM_ANSWERS, "Saturday shift"),
    ]
    threads = [threading.Thread(target=replier, daemon=True) for replier in repliers]
    failures = 0
    try:
        print("Starting Airflow (API server, scheduler, DAG processor, triggerer) once for every step ...", flush=True)
        airflow.start()
        airflow.wait_until_ready([dag_id for dag_id, *_ in RUNS])
        print(f"Airflow is up at {airflow.url} after {time.monotonic() - started:.0f}s; triggering:", flush=True)
        runs = {}
        for dag_id, conf, _expected, what in RUNS:
            runs[dag_id] = airflow.trigger(dag_id, conf)
            print(f"  {dag_id}: {what}", flush=True)
        polls_before = server.faults.stats()["requests"].get("GET /v1/sms/messages", 0)
        waiting_since = time.monotonic()
        for thread in threads:
            thread.start()
        print("Waiting for the runs (the demo answers the texts as the recipients would):", flush=True)
        states = wait_for_runs(airflow, runs)
        waited = time.monotonic() - waiting_since
        polls = server.faults.stats()["requests"].get("GET /v1/sms/messages", 0) - polls_before
        print("\nWhat each run did (from the task logs):")
        for dag_id, _conf, expected, _what in RUNS:
            state = states.get(dag_id, "unfinished")
            ok = state == expected
            failures += not ok
            note = " (as intended: the alert is the point)" if expected == "failed" and ok else ""
            print(f"> {dag_id}: {state}{note}")
            for line in what_tasks_did(dag_id, runs[dag_id])[:8]:
                print(f"    {line}")
            if not ok:
                for ti in airflow.task_states(dag_id, runs[dag_id]):
                    print(f"    task {ti['task_id']}: {ti['state']}")
        print(f"  task logs: {AIRFLOW_HOME / 'logs'}; component logs: {HOME / 'logs'}")
        summarize(server, polls, waited)
        if args.serve:
            print(f"\nOpen {server.url} to see the conversations and reply as a recipient. Ctrl-C stops.", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        airflow.stop()
        server.stop()
    if failures:
        print(f"\n{failures} demo run(s) did not end as expected; see the task states above.")
        return 1
    print(f"\nDemo finished in {time.monotonic() - started:.0f}s: every run ended as expected.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
