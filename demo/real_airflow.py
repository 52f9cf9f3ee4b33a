"""One real Airflow for the demo and the end-to-end tests: API server, scheduler, DAG processor, triggerer.

``RealAirflow`` starts the four components once (LocalExecutor, a throwaway SQLite database unless
``sql_alchemy_conn`` names another, e.g. a Postgres one), each in its own process group with its log
under ``logs_dir``, and drives them through Airflow's REST API: trigger runs, read their states,
answer human-in-the-loop requests. ``stop()`` ends every process it started. ``api_workers`` runs the
API server with that many worker processes and ``triggerers`` starts that many triggerers (more than
one needs a database other than SQLite). Every component listens on 127.0.0.1 only: the scheduler and
triggerers do not start Airflow's log servers (which bind every interface; all components share this
``home``, so task logs are read from its files), and their log-server ports are set to free ones.

Only the runs asked for happen. Without ``scheduling`` the scheduler creates no runs of its own
(``use_job_schedule`` off). With it (what asset-scheduled DAGs, such as the SMS webhook ones, need),
DAGs start paused; ``trigger`` unpauses the DAG it runs, giving a time-scheduled DAG's run the logical
date of its next scheduled run so the scheduler does not add one, and ``unpause`` lets an
asset-scheduled DAG run on its events.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def free_port(preferred: int = 0) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RealAirflow:
    """An Airflow 3 of its own under ``home``, reading DAGs from ``dags_folder``.

    :param connections: conn id -> connection dict, set as ``AIRFLOW_CONN_*`` for every component.
    :param env: more environment (``AIRFLOW_VAR_*``, options).
    :param sql_alchemy_conn: the metadata database (default: SQLite under ``home``).
    :param api_workers: worker processes of the API server (``airflow api-server --workers N``).
    :param triggerers: how many triggerer processes to start (more than one needs Postgres or MySQL).
    """

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        *,
        connections: dict[str, dict[str, Any]],
        env: dict[str, str] | None = None,
        logs_dir: Path | None = None,
        scheduling: bool = False,
        components: tuple[str, ...] = COMPONENTS,
        sql_alchemy_conn: str | None = None,
        api_workers: int = 1,
        triggerers: int = 1,
    ) -> None:
        self.home = home
        self.logs_dir = logs_dir or home / "component-logs"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": str(scheduling),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": str(scheduling),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            # Not served (see the module docstring); free ports in case a component serves them anyway.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            **(env or {}),
        }
        if sql_alchemy_conn:
            self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = sql_alchemy_conn
        for conn_id, conn in connections.items():
            self.env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
        self.binary = str(Path(sys.executable).with_name("airflow"))
        self.processes: list[subprocess.Popen[bytes]] = []
        self.http = requests.Session()
        self.scheduling = scheduling
        self.api_workers = api_workers
        # One entry per process: "triggerer" repeated when several are asked for.
        self.components = tuple(
            part
            for component in components
            for part in ([component] * triggerers if component == "triggerer" else [component])
        )
        self._started: list[str] = []

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> RealAirflow:
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run([self.binary, "db", "migrate"], env=self.env, check=True, capture_output=True)  # noqa: S603
        for component in self.components:
            name = component if component not in self._started else f"{component}-{self._started.count(component) + 1}"
            self._started.append(component)
            log = (self.logs_dir / f"{name}.log").open("wb")
            process = subprocess.Popen(  # noqa: S603
                [self.binary, component, *self._arguments(component)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()
            self.processes.append(process)
        return self

    def _arguments(self, component: str) -> list[str]:
        if component == "api-server":
            return ["--workers", str(self.api_workers)]
        if component in ("scheduler", "triggerer"):
            return ["--skip-serve-logs"]
        return []

    def wait_until_ready(self, dag_ids: list[str], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process, component in zip(self.processes, self.components, strict=True):
                if process.poll() is not None:
                    raise RuntimeError(f"airflow {component} exited; see its log under {self.logs_dir}")
            try:
                health = self.http.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
                listed = self.http.get(f"{self.url}/api/v2/dags", params={"limit": 100}, timeout=5).json()
            except (requests.RequestException, ValueError):
                time.sleep(1)
                continue
            parsed = {d["dag_id"] for d in listed.get("dags", [])}
            needed = [c for c in ("scheduler", "triggerer") if c in self.components]
            healthy = all(health.get(c, {}).get("status") == "healthy" for c in needed)
            if healthy and set(dag_ids) <= parsed:
                return
            time.sleep(1)
        raise RuntimeError(f"Airflow did not become ready; see the component logs under {self.logs_dir}")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    # --- the REST API ------------------------------------------------------------------------------

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Start a run now (with a logical date, as the UI's trigger form gives one); return its run id."""
        logical_date = datetime.now(timezone.utc).isoformat()
        if self.scheduling:  # take the place of the run the scheduler would add on unpausing
            dag = self.http.get(f"{self.url}/api/v2/dags/{dag_id}", timeout=30).json()
            logical_date = dag.get("next_dagrun_logical_date") or logical_date
        body = {"logical_date": logical_date, "conf": conf or {}}
        answer = self.http.post(f"{self.url}/api/v2/dags/{dag_id}/dagRuns", json=body, timeout=30)
        answer.raise_for_status()
        if self.scheduling:
            self.unpause(dag_id)
        return str(answer.json()["dag_run_id"])

    def unpause(self, dag_id: str) -> None:
        answer = self.http.patch(f"{self.url}/api/v2/dags/{dag_id}", json={"is_paused": False}, timeout=30)
        answer.raise_for_status()

    def runs_of(self, dag_id: str) -> list[dict[str, Any]]:
        """Every run of a DAG (asset-triggered ones included), oldest first."""
        answer = self.http.get(
            f"{self.url}/api/v2/dags/{dag_id}/dagRuns", params={"order_by": "run_after", "limit": 100}, timeout=30
        )
        return list(answer.json().get("dag_runs", []))

    def run_state(self, dag_id: str, run_id: str) -> str:
        answer = self.http.get(f"{self.url}/api/v2/dags/{dag_id}/dagRuns/{run_id}", timeout=30)
        return str(answer.json().get("state"))

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        answer = self.http.get(
            f"{self.url}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100}, timeout=30
        )
        return {ti["task_id"]: ti["state"] for ti in answer.json().get("task_instances", [])}

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.run_state(dag_id, run_id)
            if state in ("success", "failed"):
                return state
            time.sleep(1)
        raise TimeoutError(f"{dag_id} run {run_id} did not finish; tasks: {self.task_states(dag_id, run_id)}")

    def wait_for_task_state(self, dag_id: str, run_id: str, task_id: str, state: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.task_states(dag_id, run_id).get(task_id) == state:
                return
            time.sleep(1)
        raise TimeoutError(f"{dag_id}.{task_id} never reached {state}: {self.task_states(dag_id, run_id)}")

    def hitl_path(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
        return f"{self.url}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails"

    def hitl_detail(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        answer = self.http.get(self.hitl_path(dag_id, run_id, task_id), timeout=30)
        answer.raise_for_status()
        return dict(answer.json())

    def answer_in_ui(self, dag_id: str, run_id: str, task_id: str, options: list[str], params: dict) -> int:
        """Answer a human-in-the-loop request as a UI user would; return the HTTP status."""
        body = {"chosen_options": options, "params_input": params}
        return self.http.patch(self.hitl_path(dag_id, run_id, task_id), json=body, timeout=30).status_code

    def task_log_lines(self, dag_id: str, run_id: str, logger_part: str = "airflow_provider_sms") -> list[str]:
        """Our provider's log lines from a run's task logs: what each task sent or received."""
        lines = []
        run_dir = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        for path in sorted(run_dir.glob("task_id=*/**/*.log")):
            task = path.relative_to(run_dir).parts[0][len("task_id=") :]
            for raw in path.read_text(errors="replace").splitlines():
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                if logger_part in str(entry.get("logger", "")) and entry.get("level") in ("info", "warning"):
                    lines.append(f"{task}: {entry.get('event')}")
        return lines
