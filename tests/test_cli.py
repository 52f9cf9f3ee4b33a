"""The opt-out commands: in process against the suite's metadata database, and as a person runs them
(``airflow sms opt-outs ...`` on Airflow 3.3, the ``airflow-sms`` console script on every Airflow), each
in a fresh AIRFLOW_HOME with a migrated SQLite database."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_sms import cli
from airflow_provider_sms.state.opt_outs import OptOutRegister
from tests.keystore import empty_opt_out_register

BIN = Path(sys.executable).parent


@pytest.fixture
def register(airflow_db: None) -> OptOutRegister:
    return OptOutRegister()  # empty: the suite empties the register after every test


def test_add_list_remove_in_process(register: OptOutRegister, capsys: pytest.CaptureFixture[str]) -> None:
    cli.main(["opt-outs", "add", "0400 000 201", "+61400000202", "--region", "AU", "--word", "STOP", "--by", "ann"])
    assert "+61400000201: opted out" in capsys.readouterr().out
    assert register.opted_out(["+61400000201", "+61400000202"]) == {"+61400000201", "+61400000202"}
    cli.main(["opt-outs", "list", "-o", "json"])
    listed = json.loads(capsys.readouterr().out)
    assert {(e["number"], e["source"], e["word"], e["by"]) for e in listed} == {
        ("+61400000201", "cli", "STOP", "ann"),
        ("+61400000202", "cli", "STOP", "ann"),
    }
    cli.main(["opt-outs", "remove", "+61400000201"])
    assert "removed from the register" in capsys.readouterr().out
    assert register.opted_out(["+61400000201", "+61400000202"]) == {"+61400000202"}


def test_export_then_import_round_trips_the_register(
    register: OptOutRegister, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register.add("+61400000211", source="reply:cloudware_default", word="Stop", at="2026-01-02T03:04:05+00:00")
    register.add("+61400000212", source="provider:cellcast_default", at="2026-01-03T00:00:00+00:00")
    exported = tmp_path / "register.csv"
    cli.main(["opt-outs", "export", str(exported)])
    rows = list(csv.DictReader(io.StringIO(exported.read_text())))
    assert [(r["number"], r["source"], r["at"]) for r in rows] == [
        ("+61400000212", "provider:cellcast_default", "2026-01-03T00:00:00+00:00"),
        ("+61400000211", "reply:cloudware_default", "2026-01-02T03:04:05+00:00"),
    ]
    empty_opt_out_register()  # as in a new deployment
    cli.main(["opt-outs", "import", str(exported)])
    assert "2 number(s) opted out" in capsys.readouterr().out
    entry = register.get("+61400000211")
    assert entry is not None and (entry.source, entry.word, entry.at.isoformat()) == (
        "reply:cloudware_default",
        "Stop",
        "2026-01-02T03:04:05+00:00",
    )


def test_import_of_bare_numbers_skips_and_reports_what_is_not_a_number(
    register: OptOutRegister, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "crm.txt"
    source.write_text("# from the CRM\n0400000221\nnot a number\n+61400000222\n")
    with pytest.raises(SystemExit) as failed:
        cli.main(["opt-outs", "import", str(source), "--region", "AU"])
    assert failed.value.code == 1
    out = capsys.readouterr()
    assert "2 number(s) opted out" in out.out and "not a number" in out.err
    entry = register.get("+61400000221")
    assert entry is not None and entry.source == "import:crm.txt"


def _fresh_home(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True, timeout=240)
    return env


def _run(env: dict[str, str], *command: str) -> str:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_airflow_sms_opt_outs_on_airflow_3_3(tmp_path: Path) -> None:
    from tests.realstack import require_newest_airflow

    require_newest_airflow()
    env = _fresh_home(tmp_path)
    airflow = str(BIN / "airflow")
    assert "+61400000231: opted out" in _run(env, airflow, "sms", "opt-outs", "add", "+61400000231", "--word", "STOP")
    (tmp_path / "more.csv").write_text("number,source\n+61400000232,crm\n")
    assert "1 number(s) opted out" in _run(env, airflow, "sms", "opt-outs", "import", str(tmp_path / "more.csv"))
    assert "removed" in _run(env, airflow, "sms", "opt-outs", "remove", "+61400000231")
    exported = _run(env, airflow, "sms", "opt-outs", "export")
    rows = list(csv.DictReader(io.StringIO(exported[exported.index("number,at") :])))
    assert [(r["number"], r["source"]) for r in rows] == [("+61400000232", "crm")]


def test_the_console_script_on_this_airflow(tmp_path: Path) -> None:
    """``airflow-sms opt-outs``: the front end for Airflow 2.11, which has no provider commands."""
    env = _fresh_home(tmp_path)
    script = str(BIN / "airflow-sms")
    assert "opted out" in _run(env, script, "opt-outs", "add", "+61400000241")
    listed = _run(env, script, "opt-outs", "list", "-o", "json")
    assert [e["number"] for e in json.loads(listed[listed.index("[") :])] == ["+61400000241"]
    done = subprocess.run([script, "opt-outs", "remove"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "NUMBER" in done.stderr  # argparse names what is missing


def test_the_provider_declares_its_commands_and_importing_them_stays_light() -> None:
    from airflow_provider_sms.get_provider_info import get_provider_info

    assert get_provider_info()["cli"] == ["airflow_provider_sms.cli.get_cli_commands"]
    probe = "import sys, airflow_provider_sms.cli; print(any(m.startswith('airflow.') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "False"
