"""A real Chromium for browser tests: Debian's package driven by Playwright (its own download is not used)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_HOW = (
    "needs Debian's chromium: `apt-get install chromium` (.ci/run installs it); Playwright's own browser "
    "download is not used"
)


def chromium_path() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def launched_chromium() -> Iterator[Any]:
    """Chromium, headless, for a module's tests (a fixture body); skips with how to get it when missing."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright: `pip install -e '.[dev]'`")
    executable = chromium_path()
    if executable is None:
        pytest.skip(CHROMIUM_HOW)
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's own sandbox cannot start
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()
