"""The README runs as written: every Python block in it is executed against the sandbox, and every phone
number in the README and the package's docstrings is one the library accepts.

The blocks may rely only on the preamble the README states: run from the repository root, with the
three connections of its "Connections" section pointed at the sandbox. Blocks that import
``airflow.sdk`` need Airflow 3 and are skipped on 2.11.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sms._compat import AIRFLOW_V_3

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
PHONE = re.compile(r"(?<![\w/=])\+\d[\d ]{6,17}\d(?!\d)")


def test_the_readme_has_python_blocks() -> None:
    assert len(BLOCKS) >= 10


@pytest.fixture
def readme_preamble(make_conn: Any, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The README's preamble: its three connections (as "Connections" shows them) on the sandbox."""
    make_conn("cellcast_default", "cellcast", host=sandbox.url, sender="MyCompany")
    make_conn("clickatell_default", "clickatell", host=sandbox.url, request_format="json")
    make_conn("cloudware_default", "cloudware", host=sandbox.url)
    monkeypatch.chdir(ROOT)
    return sandbox


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_each_python_block_runs_as_written(airflow_db: None, readme_preamble: Any, index: int) -> None:
    block = BLOCKS[index]
    if "airflow.sdk" in block and not AIRFLOW_V_3:
        pytest.skip("an Airflow 3 example")
    exec(compile(block, f"README.md python block {index}", "exec"), {"__name__": f"readme_block_{index}"})  # noqa: S102


def test_the_hook_block_really_sends_through_the_sandbox(airflow_db: None, readme_preamble: Any) -> None:
    (hooks_block,) = [b for b in BLOCKS if "CellcastHook().send_mms" in b]
    exec(compile(hooks_block, "README.md hooks block", "exec"), {"__name__": "readme_hooks"})  # noqa: S102
    sent = {(m["provider"], m["endpoint"]) for m in readme_preamble.store.all() if m["direction"] == "out"}
    assert sent == {("cellcast", "/api/v1/gateway"), ("cellcast", "/api/v1/gatewaymms"), ("clickatell", "/messages")}


def documented_numbers() -> list[tuple[str, str]]:
    found = [("README.md", n) for n in PHONE.findall(README)]
    for folder in ("airflow_provider_sms", "example_dags"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            found += [(str(path.relative_to(ROOT)), n) for n in PHONE.findall(path.read_text())]
    return found


def test_every_documented_phone_number_is_accepted() -> None:
    from airflow_provider_sms.core.errors import SmsValidationError
    from airflow_provider_sms.core.phone import normalize_number

    numbers = documented_numbers()
    assert len(numbers) > 30
    refused = []
    for where, number in numbers:
        try:
            normalize_number(number)
        except SmsValidationError as err:
            refused.append(f"{where}: {err}")
    assert refused == []
