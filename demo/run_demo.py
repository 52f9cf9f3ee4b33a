"""``make demo``: the example DAGs end to end in a real Airflow, against the local sandbox.

Starts the sandbox on 127.0.0.1 and one real Airflow (``demo.real_airflow``: API server, scheduler, DAG
processor, triggerer, with the LocalExecutor on a throwaway SQLite database under ``.demo/``), all
started once and shared by every step. It triggers each example DAG through Airflow's REST API, answers
the text messages as the recipients would (the approvers say YES, the team answers the survey, the
on-call acknowledges), waits for every run, and prints what each task did, what the sandbox sent and
received (the deadline alert and the approval request among it), and how many polls the waiting
cost: the deferred waits share one poll of the inbox in the triggerer. Last, the sandbox calls the
SMS webhook on the Airflow API server with a reply, as Cloudware would, and the DAG scheduled on the
reply asset runs with no polling at all; then that customer replies STOP, which puts the number in the
opt-out register, and the DAG's next text to them is skipped. It stops everything it started; with ``--serve`` it keeps
the sandbox and Airflow up for a person to browse (a reply typed on the sandbox page runs that DAG).

A busy machine is expected: the embedded SQLite database can make the API server answer 5xx for a
moment, so REST calls are retried with backoff (a trigger names its run id, so a retried trigger can
never start a second run), triggers are paced, and a failure ends with what failed and where the logs
are instead of a traceback.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from demo.real_airflow import RealAirflow, free_port  # noqa: E402

HOME = ROOT / ".demo"
AIRFLOW_HOME = HOME / "airflow"
TOKEN = "sandbox-token"  # noqa: S105 - the sandbox accepts any token; this one is for show
WEBHOOK_SECRET = "demo-webhook-secret"  # noqa: S105 - the secret the webhook URLs carry
WEBHOOK_CUSTOMER = "+61400000051"
APPROVER = "+61400000001"
# Who answers what, and how many seconds after being asked: the sensors wait across several polls.
APPROVER_ANSWER = {APPROVER: ("YES", 6)}
SMS_APPROVER_ANSWER = {"+61400000002": ("yes, publish it", 5)}
ON_CALL_ANSWER = {"+61400000022": ("ack", 3)}  # the primary (...021) never answers: the secondary is paged
ON_CALL_ACK_SECONDS = 10  # oncall_escalation's ack_within: seconds here, ten minutes in the example
TEAM_ANSWERS = {
    "+61400000011": ("YES", 4),
    "+61400000012": ("No, sorry", 9),
    "+61400000013": ("yes!", 14),
    "+61400000014": ("NO", 19),
}
SENSOR_POLL_INTERVAL = 5  # poke_interval of the example sensors
TRIGGER_PACE = 1.0  # seconds between triggers: the scheduler and starting tasks write to SQLite too
RETRY_DELAYS = (1, 2, 4, 8, 15)  # seconds before each retry of a REST call answered 5xx or not at all
T = TypeVar("T")


class DemoError(Exception):
    """A step of the demo that could not be done; the message says which and why."""


def transient(err: Exception) -> bool:
    """A 5xx answer or no answer: worth another try once the database is less busy."""
    if isinstance(err, requests.HTTPError):
        return err.response is not None and err.response.status_code >= 500
    return isinstance(err, (requests.ConnectionError, requests.Timeout))


def with_retries(what: str, call: Callable[[], T]) -> T:
    """``call()``, tried again after a transient failure (see ``RETRY_DELAYS``); ``DemoError`` when it keeps failing."""
    for delay in (*RETRY_DELAYS, None):
        try:
            return call()
        except (requests.RequestException, ValueError) as err:
            if delay is None or not transient(err):
                raise DemoError(f"{what}: {describe(err)}") from err
            print(f"    ({what}: {describe(err)}; trying again in {delay}s)", flush=True)
            time.sleep(delay)
    raise AssertionError("unreachable")


def describe(err: Exception) -> str:
    if isinstance(err, requests.HTTPError) and err.response is not None:
        return f"HTTP {err.response.status_code} from {err.response.request.method} {err.response.url}"
    return f"{type(err).__name__}: {err}"


def checked(answer: requests.Response) -> Any:
    answer.raise_for_status()
    return answer.json()


def trigger(airflow: RealAirflow, dag_id: str, conf: dict[str, Any] | None) -> str:
    """Start a run as ``RealAirflow.trigger`` does, under a run id of our own, so that a retry after a 5xx
    either starts the run or finds it already started (409), never starts a second one."""
    api = f"{airflow.url}/api/v2/dags/{dag_id}"
    dag = with_retries(f"reading DAG {dag_id}", lambda: checked(airflow.http.get(api, timeout=30)))
    now = datetime.now(timezone.utc)
    logical_date = dag.get("next_dagrun_logical_date") or now.isoformat()  # what the scheduler would add
    run_id = f"demo__{dag_id}__{now.strftime('%Y%m%dT%H%M%S%f')}"
    body = {"dag_run_id": run_id, "logical_date": logical_date, "conf": conf or {}}
    tries = 0

    def post() -> None:
        nonlocal tries
        tries += 1
        answer = airflow.http.post(f"{api}/dagRuns", json=body, timeout=30)
        if answer.status_code == 409 and tries > 1:
            return  # an earlier try was processed after all
        answer.raise_for_status()

    with_retries(f"triggering {dag_id}", post)
    with_retries(f"unpausing {dag_id}", lambda: checked(airflow.http.patch(api, json={"is_paused": False}, timeout=30)))
    return run_id


def quietly(call: Callable[[], T]) -> T | None:
    """``call()``, or None when the API server did not answer well this time (a poll tries again)."""
    try:
        return call()
    except (requests.RequestException, ValueError):
        return None


def log_lines_in_order(airflow: RealAirflow, dag_id: str, run_id: str) -> list[str]:
    """The run's provider log lines, task by task in the order the tasks started (not by task name)."""
    answer = quietly(
        lambda: checked(
            airflow.http.get(
                f"{airflow.url}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100}, timeout=30
            )
        )
    )
    started = {ti["task_id"]: ti.get("start_date") or "~" for ti in (answer or {}).get("task_instances", [])}
    lines = airflow.task_log_lines(dag_id, run_id)
    return sorted(lines, key=lambda line: started.get(line.split(":", 1)[0], "~"))  # sorted() keeps ties in order


RUNS: list[tuple[str, dict[str, Any] | None, str, str]] = [
    ("sms_alerting", {"simulate_failure": True}, "failed", "the nightly load fails and the on-call phone is texted"),
    ("scheduled_reminders", None, "success", "personal reminders held by Clickatell until 09:00 local time"),
    ("mms_campaign", None, "success", "an MMS with an image through Cellcast"),
    ("cloudware_queue", None, "success", "a newsletter queued with Cloudware for recipients from XCom"),
    ("reply_approval", None, "success", "ask for approval, wait (deferred) for the reply, branch on it"),
    ("reply_survey", None, "success", "ask a team, four deferred sensors wait on one shared inbox poll"),
    ("sms_approval", None, "success", "an approval (human-in-the-loop) answered by text message"),
    ("deadline_alert", {"work_seconds": 30}, "success", "a run misses its deadline: the triggerer texts on-call"),
    (
        "oncall_escalation",
        {"ack_within_seconds": ON_CALL_ACK_SECONDS},
        "success",
        f"page the primary on-call; no ACK in {ON_CALL_ACK_SECONDS}s, so the secondary is paged and acknowledges",
    ),
    ("delivery_report", None, "success", "reminders, then a deferred wait for delivery reports (one bounces)"),
]


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


def summarize(server: Any, polls: int, waited: float) -> None:
    """What the sandbox sent and received, the deadline and approval texts, and what the waiting cost."""
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
    for label, marker in (("Deadline alert", "DEADLINE MISSED"), ("Approval asked", "Reply APPROVE")):
        texts = [r["text"] for r in rows if r["direction"] == "out" and marker in r["text"]]
        print(f"\n{label} by SMS: {texts[0] if texts else '(none was sent)'}")
    print(
        f"\nEight deferred waits (reply_approval's sensor, reply_survey's four, the approval, the escalation's "
        f"acknowledgement) shared one triggerer's poll of the Cloudware inbox: {polls} request(s) in the "
        f"{waited:.0f}s of the runs, one every {SENSOR_POLL_INTERVAL}s while anyone waited, not one per waiter."
    )


def webhook_step(airflow: RealAirflow, server: Any) -> bool:
    """A reply pushed by the sandbox's webhook becomes an asset event; the DAG scheduled on it runs."""
    url = f"{airflow.url}/sms/webhooks/cloudware_default/inbound?secret={WEBHOOK_SECRET}"
    server.webhooks.configure("cloudware", inbound=url, status=None)
    print(
        f"\nWebhook: the sandbox now calls {url.split('?')[0]} for every Cloudware reply;"
        f" {WEBHOOK_CUSTOMER} texts 'Is my order ready?'",
        flush=True,
    )
    server.store.add_message(
        direction="in", provider="cloudware", phone=WEBHOOK_CUSTOMER, text="Is my order ready?", status="received"
    )
    run = next_finished_run(airflow, "reply_webhook", after=0)
    if run is None:
        print("> reply_webhook: no run within 90s; see the api-server and scheduler logs")
        return False
    answer = [m["text"] for m in server.store.all(phone=WEBHOOK_CUSTOMER) if m["direction"] == "out"]
    print(f"> reply_webhook: {run['state']} ({run['run_type']} run); it answered {answer}")
    return bool(run["state"] == "success")


def finished_runs(airflow: RealAirflow, dag_id: str) -> list[dict[str, Any]]:
    listed = quietly(lambda: airflow.runs_of(dag_id)) or []
    return [r for r in listed if r["state"] in ("success", "failed")]


def next_finished_run(airflow: RealAirflow, dag_id: str, *, after: int, timeout: float = 90) -> dict[str, Any] | None:
    """The newest finished run of ``dag_id`` once more than ``after`` have finished; None by ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = finished_runs(airflow, dag_id)
        if len(done) > after:
            return done[-1]
        time.sleep(1)
    return None


def opt_out_step(airflow: RealAirflow, server: Any) -> bool:
    """The webhook's customer replies STOP: the API server puts the number in the opt-out register, and
    the acknowledgement reply_webhook sends next skips them (reported unsubscribed, nothing sent)."""
    finished = finished_runs(airflow, "reply_webhook")
    texted_before = [m for m in server.store.all(phone=WEBHOOK_CUSTOMER) if m["direction"] == "out"]
    print(f"\nOpt-out: {WEBHOOK_CUSTOMER} replies 'STOP' (through the same webhook)", flush=True)
    server.store.add_message(
        direction="in", provider="cloudware", phone=WEBHOOK_CUSTOMER, text="STOP", status="received"
    )
    run = next_finished_run(airflow, "reply_webhook", after=len(finished))
    if run is None:
        print("> reply_webhook: no run after the STOP within 90s; see the api-server and scheduler logs")
        return False
    texted = [m for m in server.store.all(phone=WEBHOOK_CUSTOMER) if m["direction"] == "out"]
    skipped = len(texted) == len(texted_before)
    print(
        f"> reply_webhook: {run['state']}; the acknowledgement to the customer who replied STOP was "
        f"{'skipped: the register held the number, no request was made' if skipped else 'SENT'}"
    )
    print("  See and correct the register with `airflow sms opt-outs list` (AIRFLOW_HOME=.demo/airflow).")
    return skipped and run["state"] == "success"


def wait_for_runs(
    airflow: RealAirflow, runs: dict[str, str], expected: dict[str, str], timeout: float = 240
) -> dict[str, str]:
    states: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while len(states) < len(runs) and time.monotonic() < deadline:
        for dag_id, run_id in runs.items():
            if dag_id not in states:
                state = quietly(lambda dag_id=dag_id, run_id=run_id: airflow.run_state(dag_id, run_id))
                if state in ("success", "failed"):
                    states[dag_id] = state
                    note = " (as intended)" if state == expected[dag_id] == "failed" else ""
                    print(f"  {dag_id}: {state}{note}", flush=True)
        time.sleep(1)
    return states


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="keep the sandbox running after the demo")
    parser.add_argument("--port", type=int, default=8765, help="the sandbox's port (0: any free one)")
    parser.add_argument("--airflow-port", type=int, default=0, help="the Airflow API server's port (0: any free one)")
    args = parser.parse_args()

    from airflow_provider_sms.sandbox.server import SandboxServer

    if args.airflow_port and free_port(args.airflow_port) != args.airflow_port:
        print(f"Port {args.airflow_port} is in use: choose another --airflow-port (0: any free one).", file=sys.stderr)
        return 2
    shutil.rmtree(HOME, ignore_errors=True)
    (HOME / "logs").mkdir(parents=True)
    started = time.monotonic()
    port = free_port(args.port)
    if args.port and port != args.port:
        print(f"Port {args.port} is in use: the sandbox takes {port} instead (set it with --port).", flush=True)
    server = SandboxServer(port=port).start()
    print(f"SMS sandbox running at {server.url}", flush=True)
    connections = {
        f"{conn_type}_default": {
            "conn_type": conn_type,
            "host": server.url,
            "password": TOKEN,
            "extra": {"country_code": "61", "webhook_secret": WEBHOOK_SECRET},
        }
        for conn_type in ("cellcast", "clickatell", "cloudware")
    }
    airflow = RealAirflow(
        AIRFLOW_HOME,
        ROOT / "example_dags",
        connections=connections,
        env={"AIRFLOW_VAR_REPORT_DEADLINE_SECONDS": "10"},
        logs_dir=HOME / "logs",
        scheduling=True,
    )
    if args.airflow_port:  # RealAirflow picks a free port; the same settings name a chosen one
        airflow.port, airflow.url = args.airflow_port, f"http://127.0.0.1:{args.airflow_port}"
        airflow.env.update(
            {
                "AIRFLOW__API__PORT": str(airflow.port),
                "AIRFLOW__API__BASE_URL": airflow.url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{airflow.url}/execution/",
            }
        )
    stop = threading.Event()
    repliers: list[Callable[[], None]] = [
        lambda: answer_when_asked(server.store, stop, APPROVER_ANSWER, "Reply YES to publish"),
        lambda: answer_when_asked(server.store, stop, TEAM_ANSWERS, "Saturday shift"),
        lambda: answer_when_asked(server.store, stop, SMS_APPROVER_ANSWER, "Reply APPROVE or REJECT"),
        lambda: answer_when_asked(server.store, stop, ON_CALL_ANSWER, "Reply ACK"),
    ]
    threads = [threading.Thread(target=replier, daemon=True) for replier in repliers]
    expected = {dag_id: state for dag_id, _conf, state, _what in RUNS}
    failures = 0
    step = "starting Airflow"
    try:
        print("Starting Airflow (API server, scheduler, DAG processor, triggerer) once for every step ...", flush=True)
        airflow.start()
        airflow.wait_until_ready([*(dag_id for dag_id, *_ in RUNS), "reply_webhook"])
        step = "unpausing reply_webhook"
        with_retries(step, lambda: airflow.unpause("reply_webhook"))
        # Reports turn final 20 s after a send, so delivery_report's trigger is still polling a while after it
        # deferred: on Airflow 3.2-3.3 a trigger that fires within seconds of deferring can have the task failed
        # by a stale executor event (apache/airflow#67287), which has nothing to do with the provider.
        server.store.settings.delivery.update({"sent_after": 2, "final_after": 20})
        print(f"Airflow is up at {airflow.url} after {time.monotonic() - started:.0f}s; triggering:", flush=True)
        runs: dict[str, str] = {}
        for dag_id, conf, _expected, what in RUNS:
            step = f"triggering {dag_id}"
            runs[dag_id] = trigger(airflow, dag_id, conf)
            print(f"  {dag_id}: {what}", flush=True)
            time.sleep(TRIGGER_PACE)
        polls_before = server.faults.stats()["requests"].get("GET /v1/sms/messages", 0)
        waiting_since = time.monotonic()
        for thread in threads:
            thread.start()
        step = "waiting for the runs"
        print("Waiting for the runs (the demo answers the texts as the recipients would):", flush=True)
        states = wait_for_runs(airflow, runs, expected)
        waited = time.monotonic() - waiting_since
        polls = server.faults.stats()["requests"].get("GET /v1/sms/messages", 0) - polls_before
        step = "reporting the runs"
        print("\nWhat each run did (from the task logs):")
        for dag_id, _conf, want, _what in RUNS:
            state = states.get(dag_id, "unfinished")
            ok = state == want
            failures += not ok
            note = " (as intended: the alert is the point)" if want == "failed" and ok else ""
            print(f"> {dag_id}: {state}{note}")
            for line in log_lines_in_order(airflow, dag_id, runs[dag_id])[:8]:
                print(f"    {line}")
            if not ok:
                tasks = quietly(lambda dag_id=dag_id: airflow.task_states(dag_id, runs[dag_id])) or {}
                for task_id, task_state in tasks.items():
                    print(f"    task {task_id}: {task_state}")
                print(f"    its task logs: {AIRFLOW_HOME / 'logs' / f'dag_id={dag_id}'}")
        print(f"  task logs: {AIRFLOW_HOME / 'logs'}; component logs: {HOME / 'logs'}")
        summarize(server, polls, waited)
        step = "the webhook step"
        failures += not webhook_step(airflow, server)
        step = "the opt-out step"
        failures += not opt_out_step(airflow, server)
        if args.serve:
            print(
                f"\nOpen {server.url} to see the conversations and reply as a recipient: a Cloudware reply"
                f" goes through the webhook and runs reply_webhook (Airflow UI: {airflow.url}). Ctrl-C stops.",
                flush=True,
            )
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    except Exception as err:  # the first thing a user runs: say what failed and where to look, no traceback
        print(f"\nThe demo failed while {step}: {err}", file=sys.stderr)
        print(
            f"  Airflow's component logs (api-server, scheduler, dag-processor, triggerer): {HOME / 'logs'}\n"
            f"  task logs: {AIRFLOW_HOME / 'logs'}",
            file=sys.stderr,
        )
        return 1
    finally:
        stop.set()
        airflow.stop()
        server.stop()
    if failures:
        print(f"\n{failures} demo run(s) did not end as expected; see the task states and logs above.")
        return 1
    print(f"\nDemo finished in {time.monotonic() - started:.0f}s: every run ended as expected.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
