"""The sandbox page in a real browser (Chromium through Playwright): replying through the form stores the
reply without submitting the page, so the text never lands in the URL and no request is aborted; a
Clickatell recipient is answered through Clickatell; the page loads with no 404 (its icon included)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.browser import launched_chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launched_chromium()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    opened = context.new_page()
    opened.set_default_timeout(30_000)
    try:
        yield opened
    finally:
        context.close()


def watch(page: Any) -> dict[str, list[str]]:
    """Every navigation, failed request and 4xx/5xx answer the page sees from now on."""
    seen: dict[str, list[str]] = {"navigations": [], "failed": [], "errors": []}
    page.on("framenavigated", lambda frame: seen["navigations"].append(frame.url))
    page.on("requestfailed", lambda request: seen["failed"].append(f"{request.method} {request.url}"))
    page.on("response", lambda r: r.status >= 400 and seen["errors"].append(f"{r.status} {r.url}"))
    return seen


def send(sandbox: Any, path: str, body: dict[str, Any], headers: dict[str, str]) -> None:
    assert requests.post(sandbox.url + path, json=body, headers=headers, timeout=5).status_code < 300


def test_replying_on_the_page_stores_the_reply_without_leaving_the_page(sandbox: Any, page: Any) -> None:
    send(sandbox, "/v1/sms/send", {"to": "61400000001", "message": "Reply YES"}, {"Authorization": "Bearer t"})
    seen = watch(page)
    page.goto(sandbox.url + "/")
    page.wait_for_load_state("networkidle")
    form = page.locator("form").filter(has=page.locator('input[value="+61400000001"]'))
    form.locator("input[name=text]").fill("YES please")
    form.locator("button").click()
    reply = sandbox.store.wait_for(lambda row: row["direction"] == "in", timeout=30)
    assert (reply["provider"], reply["phone"], reply["text"]) == ("cloudware", "+61400000001", "YES please")
    page.wait_for_function("() => !document.querySelector('input[name=text]').value")  # cleared once stored
    assert page.url == sandbox.url + "/"  # the text never went into the URL
    assert seen["navigations"] == [sandbox.url + "/"]  # loaded once, never submitted
    assert seen["failed"] == []  # nothing aborted
    assert seen["errors"] == []  # no 404, not even for the icon


def test_a_clickatell_recipient_is_answered_through_clickatell(sandbox: Any, page: Any) -> None:
    send(sandbox, "/messages", {"content": "Reply ACK", "to": ["61400000002"]}, {"Authorization": "k"})
    page.goto(sandbox.url + "/")
    form = page.locator("form").filter(has=page.locator('input[value="+61400000002"]'))
    assert form.locator("select[name=provider]").input_value() == "clickatell"
    form.locator("input[name=text]").fill("ACK")
    form.locator("input[name=text]").press("Enter")
    reply = sandbox.store.wait_for(lambda row: row["direction"] == "in", timeout=30)
    assert (reply["provider"], reply["phone"], reply["text"]) == ("clickatell", "+61400000002", "ACK")
    assert page.url == sandbox.url + "/"
