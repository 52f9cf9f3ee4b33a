"""``make demo``: run the example DAGs end to end against the local sandbox, then summarize.

Starts the sandbox on 127.0.0.1, points ``AIRFLOW_CONN_*`` at it, migrates a throwaway SQLite metadata
database under ``.demo/``, and runs each example DAG with ``airflow dags test``: the alert (with a
simulated failure), the scheduled reminders, the MMS campaign, the Cloudware queue, and the approval
flow, for which it replies YES as the approver would. It prints what was sent and received and stops
everything it started; with ``--serve`` it keeps the sandbox up for a person to browse.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / ".demo"
TOKEN = "sandbox-token"  # noqa: S105 - the sandbox accepts any token; this one is for show
APPROVER = "+61400000001"

RUNS = [
    ("sms_alerting", {"simulate_failure": True}, "the nightly load fails and the on-call phone is texted"),
    ("scheduled_reminders", None, "personal reminders scheduled with Clickatell for 09:00 local time"),
    ("mms_campaign", None, "an MMS with an image through Cellcast"),
    ("cloudware_queue", None, "a newsletter queued with Cloudware for recipients from XCom"),
    ("reply_approval", None, "ask for approval, wait (deferred) for the reply, branch on it"),
]


def free_port(preferred: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return 0


def reply_as_approver(server: object, stop: threading.Event) -> None:
    """Wait for the approval request to reach the approver's phone, then answer YES."""
    store = server.store  # type: ignore[attr-defined]
    while not stop.wait(0.2):
        asked = [m for m in store.all(phone=APPROVER) if m["direction"] == "out" and "Reply YES" in m["text"]]
        if asked:
            time.sleep(1.0)
            store.add_message(direction="in", provider="cloudware", phone=APPROVER, text="YES", status="received")
            print(f"    (the approver {APPROVER} replied YES)", flush=True)
            return


def summarize(server: object) -> None:
    rows = server.store.all()  # type: ignore[attr-defined]
    print("\nWhat the sandbox saw:")
    print(f"  {'provider':<11} {'sent':>5} {'scheduled':>9} {'received':>8} {'SMS parts':>9}")
    for provider in ("cellcast", "clickatell", "cloudware"):
        mine = [r for r in rows if r["provider"] == provider]
        sent = [r for r in mine if r["direction"] == "out"]
        print(
            f"  {provider:<11} {len(sent):>5} {sum(1 for r in sent if r['status'] == 'scheduled'):>9} "
            f"{sum(1 for r in mine if r['direction'] == 'in'):>8} {sum(r['segments'] or 0 for r in sent):>9}"
        )
    print("\nA few of the messages:")
    for row in rows[:8]:
        arrow = "->" if row["direction"] == "out" else "<-"
        text = row["text"] if len(row["text"]) <= 70 else row["text"][:67] + "..."
        print(f"  {row['provider']:<10} {arrow} {row['phone']:<15} {text}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="keep the sandbox running after the demo")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    from airflow_provider_sms.sandbox.server import SandboxServer

    shutil.rmtree(HOME, ignore_errors=True)
    (HOME / "logs").mkdir(parents=True)
    server = SandboxServer(port=free_port(args.port)).start()
    print(f"SMS sandbox running at {server.url}", flush=True)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(HOME / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }
    for conn_type in ("cellcast", "clickatell", "cloudware"):
        conn = {"conn_type": conn_type, "host": server.url, "password": TOKEN, "extra": {"country_code": "61"}}
        env[f"AIRFLOW_CONN_{conn_type.upper()}_DEFAULT"] = json.dumps(conn)
    airflow = str(Path(sys.executable).with_name("airflow"))
    failures = 0
    try:
        print("Preparing Airflow's metadata database (SQLite) ...", flush=True)
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)  # noqa: S603
        for dag_id, conf, what in RUNS:
            print(f"\n> {dag_id}: {what}", flush=True)
            stop = threading.Event()
            replier = threading.Thread(target=reply_as_approver, args=(server, stop), daemon=True)
            if dag_id == "reply_approval":
                replier.start()
            command = [airflow, "dags", "test", dag_id]
            if conf:
                command += ["--conf", json.dumps(conf)]
            started = time.monotonic()
            log_path = HOME / "logs" / f"{dag_id}.log"
            with log_path.open("w") as log:
                code = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT).returncode  # noqa: S603
            stop.set()
            state = _final_state(dag_id)
            expected_failure = bool(conf and conf.get("simulate_failure"))
            ok = state == "failed" if expected_failure else (code == 0 and state == "success")
            note = " (as intended: the alert is the point)" if expected_failure and ok else ""
            print(f"  run {state or 'unknown'}{note} in {time.monotonic() - started:.0f}s; log: {log_path}", flush=True)
            failures += not ok
        summarize(server)
        if args.serve:
            print(f"\nOpen {server.url} to see the conversations and reply as a recipient. Ctrl-C stops.", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    if failures:
        print(f"\n{failures} demo run(s) did not end as expected; see the logs above.")
        return 1
    print("\nDemo finished: every run ended as expected.")
    return 0


def _final_state(dag_id: str) -> str | None:
    """The state of the DAG's latest run, read from the demo's SQLite metadata database."""
    import sqlite3

    with sqlite3.connect(HOME / "airflow" / "airflow.db") as db:
        row = db.execute("SELECT state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)).fetchone()
    return row[0] if row else None


if __name__ == "__main__":
    sys.exit(main())
