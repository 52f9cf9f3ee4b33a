"""The opt-out register on Postgres, written by four processes at once: every STOP and START of five
numbers, interleaved, each process in its own order, started together. Whatever order the writes land
in, each number ends in the state of its latest event, read through the events (what every check on
Airflow 3.3, the API server, the CLI and 2.11 reads) and, after a snapshot, through the snapshot plus
the recent hours. A register kept as one record per number, read, changed and written back, would let
a START delete a STOP written a moment later.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.realstack import require_newest_airflow

require_newest_airflow()

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

from airflow_provider_sms.state.opt_outs import _micros  # noqa: E402
from tests.deadline import wait_for  # noqa: E402

NUMBERS = [f"+6140000{i:04d}" for i in range(5)]
EVENTS_PER_NUMBER = 24
PROCESSES = 4

WRITER = """
import json, sys, time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from airflow_provider_sms.state.opt_outs import OptOutRegister

events, ready, go = json.loads(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
t0 = datetime.fromisoformat(sys.argv[4])
register = OptOutRegister()
register.store.get("sms_optsnap")  # connect before the start line
ready.touch()
deadline = time.monotonic() + 120
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit("never told to start")
    time.sleep(0.001)
for number, kind, minute in events:
    change = register.add if kind == "stop" else register.remove
    change(number, source="race", at=t0 + timedelta(minutes=minute))
"""

READER = """
import json, sys
from airflow_provider_sms.state.opt_outs import OptOutRegister, digest

numbers = json.loads(sys.argv[1])
register = OptOutRegister(refresh=sys.argv[2] == "refresh")
reading = register.states()
latest = {n: reading.get(digest(n)) for n in numbers}
print(json.dumps({n: [e.kind, e.at] if e else None for n, e in latest.items()}))
"""


def run_python(env: dict[str, str], script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def test_four_processes_recording_stops_and_starts_at_once_keep_each_numbers_latest_event(
    fresh_postgres_url: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": fresh_postgres_url,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)

    t0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)  # recent: the snapshot keeps times
    shuffle = random.Random(7)
    expected, events = {}, []
    for n, number in enumerate(NUMBERS):
        last = "stop" if n % 2 == 0 else "start"  # what the latest event of this number is
        other = "start" if last == "stop" else "stop"
        for minute in range(EVENTS_PER_NUMBER):  # alternating, ending with ``last``
            events.append((number, last if (EVENTS_PER_NUMBER - 1 - minute) % 2 == 0 else other, minute))
        expected[number] = "o" if last == "stop" else "i"
    shuffle.shuffle(events)
    go = tmp_path / "go"
    writers = []
    for i in range(PROCESSES):
        ready = tmp_path / f"ready-{i}"
        share = json.dumps(events[i::PROCESSES])
        writers.append(
            (
                ready,
                subprocess.Popen(
                    [sys.executable, "-c", WRITER, share, str(ready), str(go), t0.isoformat()],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
        )
    wait_for(lambda: all(ready.exists() for ready, _ in writers), timeout=120, what="every writer connected")
    go.touch()
    for _, process in writers:
        _out, err = process.communicate(timeout=240)
        assert process.returncode == 0, err[-3000:]

    last_at = _micros(t0 + timedelta(minutes=EVENTS_PER_NUMBER - 1))
    for mode in ("no-refresh", "refresh", "no-refresh"):  # the events; a snapshot is written; it is read
        latest = json.loads(run_python(env, READER, json.dumps(NUMBERS), mode))
        assert {n: kind for n, (kind, _at) in latest.items()} == expected, mode
        assert {at for _kind, at in latest.values()} == {last_at}, mode  # each number's last event
