"""What a pip user gets: the wheel and the sdist carry the licence, the typing marker and the example
DAGs (with the MMS example's image), and the provider metadata Airflow reads names every part."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from airflow_provider_sms import __version__
from tests.conftest import EXAMPLE_DAGS

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel and sdist, built once (what ``make dist`` runs) into a temporary folder."""
    uv = Path(sys.executable).with_name("uv")
    if not uv.exists() and shutil.which("uv") is None:
        pytest.skip("uv is not installed in this venv: `make venv` installs it (or `pip install uv`)")
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [str(uv) if uv.exists() else "uv", "build", "--out-dir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    return out


def wheel_names(dist: Path) -> set[str]:
    (wheel,) = dist.glob(f"airflow_provider_sms-{__version__}-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def sdist_names(dist: Path) -> set[str]:
    (sdist,) = dist.glob(f"airflow_provider_sms-{__version__}.tar.gz")
    prefix = f"airflow_provider_sms-{__version__}/"
    with tarfile.open(sdist) as archive:
        return {name.removeprefix(prefix) for name in archive.getnames()}


def examples() -> set[str]:
    found = {p.relative_to(EXAMPLE_DAGS).as_posix() for p in EXAMPLE_DAGS.rglob("*") if p.is_file()}
    return {name for name in found if "__pycache__" not in name}


def test_the_wheel_carries_licence_typing_marker_and_examples(dist: Path) -> None:
    names = wheel_names(dist)
    assert f"airflow_provider_sms-{__version__}.dist-info/licenses/LICENSE" in names
    assert "airflow_provider_sms/py.typed" in names
    assert "airflow_provider_sms/ui/static/index.html" in names  # the SMS page in Airflow's UI
    shipped = {n.removeprefix("airflow_provider_sms/example_dags/") for n in names if "/example_dags/" in n}
    assert shipped == examples()
    assert "assets/promo.png" in shipped  # the image the MMS example sends
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_the_sdist_carries_licence_examples_and_tests(dist: Path) -> None:
    names = sdist_names(dist)
    assert {"LICENSE", "README.md", "pyproject.toml", "airflow_provider_sms/py.typed"} <= names
    assert {f"example_dags/{name}" for name in examples()} <= names
    assert "tests/test_packaging.py" in names
    assert "docs/screenshots/outbox.png" in names  # what the long description names instead of showing


def test_the_wheel_metadata_states_versions_and_licence(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(f"airflow_provider_sms-{__version__}.dist-info/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "Requires-Dist: apache-airflow<4,>=2.11" in metadata
    assert "Classifier: Development Status :: 4 - Beta" in metadata
    assert "Classifier: Programming Language :: Python :: 3.10" in metadata
    description = metadata.split("\n\n", 1)[1]
    assert "](" not in description.replace("](#", "")  # no relative links or images
    assert "*Screenshot: Outbox (`docs/screenshots/outbox.png` in the source distribution).*" in description
    assert "![" not in metadata


def test_the_licence_is_the_apache_2_text() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License")
    assert "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_provider_info_names_every_part_and_imports() -> None:
    import importlib

    from airflow_provider_sms.get_provider_info import get_provider_info

    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-sms"
    assert info["versions"] == [__version__]
    (plugin,) = info["plugins"]
    module, _, name = plugin["plugin-class"].rpartition(".")
    assert plugin["name"] == getattr(importlib.import_module(module), name).name == "sms_webhooks"
    for kind in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[kind]:
            for module_name in entry["python-modules"]:
                importlib.import_module(module_name)
    for dotted in info["notifications"]:
        module, _, name = dotted.rpartition(".")
        assert getattr(importlib.import_module(module), name)
