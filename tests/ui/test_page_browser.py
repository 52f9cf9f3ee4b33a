"""The SMS page in a real browser (Debian's Chromium through Playwright) inside a real Airflow: sign in
through Airflow's own login form, find the page under Airflow's navigation, and read each tab after a
real send through the sandbox (``delivery_report``: three reminders through Cellcast, one of which
bounces) and a real reply pushed by webhook (which starts ``reply_webhook``); opt a number out and
back in, with Airflow's audit log naming who did it; a viewer sees a reply holding markup as plain
text and the register read-only. Each tab is screenshot; with ``SMS_SCREENSHOTS=docs/screenshots``
the pictures the README shows are written there (otherwise nothing in the tree changes)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.realstack import require_newest_airflow

require_newest_airflow()

from demo.real_airflow import RealAirflow  # noqa: E402
from tests.browser import launched_chromium  # noqa: E402
from tests.conftest import EXAMPLE_DAGS  # noqa: E402
from tests.deadline import wait_for  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
SECRET = "browser-test-webhook-secret"
USERS = {"admin": ("admin", "admin-password-1"), "viewer": ("viewer", "viewer-password-1")}
REPLIER = "+61400000051"
OPTED = "+61400000077"
MARKUP = "Hi <img src=x onerror=alert(1)>"  # a reply is shown as text, never as markup


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launched_chromium()


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[tuple[RealAirflow, Any]]:
    """A real Airflow with sign-in (simple auth manager, an admin and a viewer), after a real send and a
    real reply: ``delivery_report`` has run, and a Cloudware reply came by webhook and started a run."""
    from airflow_provider_sms.sandbox.server import SandboxServer

    dags = tmp_path_factory.mktemp("dags")
    for name in ("delivery_report", "reply_webhook"):
        (dags / f"{name}.py").symlink_to(EXAMPLE_DAGS / f"{name}.py")
    home = tmp_path_factory.mktemp("airflow")
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps(dict(USERS.values())))
    with SandboxServer() as sandbox:
        sandbox.store.settings.delivery.update({"sent_after": 1, "final_after": 2})
        conns = {
            f"{kind}_default": {
                "conn_type": kind,
                "host": sandbox.url,
                "password": "browser-test-token",
                "extra": {"country_code": "61", "webhook_secret": SECRET, "prices": {"AU": 0.055, "default": 0.08}},
            }
            for kind in ("cellcast", "cloudware")
        }
        env = {
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        }
        real = RealAirflow(home, dags, connections=conns, env=env, scheduling=True).start()
        try:
            sign_in_rest(real)
            real.wait_until_ready(["delivery_report", "reply_webhook"])
            run_id = real.trigger("delivery_report")
            assert real.wait_for_run("delivery_report", run_id) == "success"
            real.unpause("reply_webhook")
            url = f"{real.url}/sms/webhooks/cloudware_default/inbound?secret={SECRET}"
            sandbox.webhooks.configure("cloudware", inbound=url, status=None)
            sandbox.store.add_message(
                direction="in", provider="cloudware", phone=REPLIER, text="STATUS?", status="received"
            )
            wait_for(
                lambda: [r for r in real.runs_of("reply_webhook") if r["state"] == "success"], what="the reply's run"
            )
            yield real, sandbox
        finally:
            real.stop()


def sign_in_rest(real: RealAirflow) -> None:
    """``RealAirflow``'s REST calls as the admin (sign-in is on in this Airflow)."""

    def token() -> str | None:
        try:
            username, password = USERS["admin"]
            body = {"username": username, "password": password}
            answer = real.http.post(f"{real.url}/auth/token", json=body, timeout=5)
        except requests.RequestException:
            return None
        return answer.json().get("access_token") if answer.status_code == 201 else None

    real.http.headers["Authorization"] = f"Bearer {wait_for(token, what='the API server to sign the admin in')}"


def signed_in(browser: Any, real: RealAirflow, who: str) -> Any:
    """A browser page signed in through Airflow's own login form."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(real.url + "/")
    username, password = USERS[who]
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"^(?!.*login).*$"))
    page.wait_for_load_state("networkidle")
    return page


def open_tab(frame: Any, tab: str) -> None:
    frame.locator(f".tabs button[data-tab={tab}]").click()
    frame.locator(f"#view[data-loaded={tab}]").wait_for()


def shoot(page: Any, tab: str) -> None:
    picture = page.screenshot()
    assert picture.startswith(b"\x89PNG")
    if folder := os.environ.get("SMS_SCREENSHOTS"):
        target = ROOT / folder
        target.mkdir(parents=True, exist_ok=True)
        (target / f"{tab}.png").write_bytes(picture)


def test_each_tab_in_airflows_ui(airflow: tuple[RealAirflow, Any], browser: Any) -> None:
    real, _sandbox = airflow
    page = signed_in(browser, real, "admin")
    errors: list[str] = []
    page.on("response", lambda r: "/sms/ui/" in r.url and r.status >= 400 and errors.append(f"{r.status} {r.url}"))
    page.get_by_text("Browse", exact=True).click()  # Airflow's own navigation: Browse -> SMS
    item = page.get_by_role("menuitem").filter(has_text=re.compile(r"^\s*SMS\s*$"))
    item.wait_for()
    item.click()
    try:
        wait_for(lambda: page.url == real.url + "/plugin/sms", what="the SMS page in Airflow's UI", timeout=30)
    except TimeoutError:
        page.screenshot(path=str(real.logs_dir / "navigation.png"))
        raise
    page.locator("iframe").wait_for()
    frame = page.frame_locator("iframe")
    frame.locator("#view[data-loaded=outbox]").wait_for()

    # Outbox: the Cellcast send, per recipient, masked, with the delivery reports the sensor read.
    frame.locator("#conn").select_option("cellcast_default")
    frame.locator("#view[data-loaded=outbox] .send").first.wait_for()
    send = frame.locator(".send").filter(has_text="delivery_report").first
    send.wait_for()
    text = send.inner_text()
    assert "send_reminders" in text
    for number in ("+614*****041", "+614*****042", "+614*****911"):
        assert number in text
    assert "+61400000041" not in page.content() + frame.locator("body").inner_html()
    rows = {row.locator("td.number").inner_text(): row.inner_text() for row in send.locator("tbody tr").all()}
    assert "accepted" in rows["+614*****041"] and "delivered" in rows["+614*****041"]
    assert "failed" in rows["+614*****911"]
    frame.locator("#status-filter").select_option("failed")
    frame.locator("#view[data-loaded=outbox]").wait_for()
    wait_for(lambda: frame.locator(".send tbody tr").count() == 1, what="only the failed recipient")
    frame.locator("#status-filter").select_option("")
    frame.locator(".send tbody tr").nth(2).wait_for()
    shoot(page, "outbox")

    # Inbox: the reply that came by webhook, and the run its asset event started.
    frame.locator("#conn").select_option("cloudware_default")
    open_tab(frame, "inbox")
    row = frame.locator("tbody tr").filter(has_text="STATUS?")
    row.wait_for()
    assert "+614*****051" in row.inner_text() and "webhook" in row.inner_text()
    assert "reply_webhook" in row.inner_text() and "asset event" in row.inner_text()
    shoot(page, "inbox")

    # Opt-outs: add a number, see it masked with an audit line naming the admin; remove it again.
    open_tab(frame, "optouts")
    frame.locator("#optout-number").fill(OPTED)
    frame.locator("#optout-add").click()
    entry = frame.locator("tbody tr").filter(has_text="+614*****077")
    entry.wait_for()
    assert "ui:admin" in entry.inner_text()
    frame.locator("#audit li").filter(has_text="admin added +614*****077").wait_for()
    shoot(page, "optouts")
    entry.locator("button[data-remove]").click()  # asks again, on the button itself
    entry.locator("button[data-remove]", has_text="back in?").click()
    frame.locator("#audit li").filter(has_text="admin removed +614*****077").wait_for()
    assert frame.locator("tbody tr").filter(has_text="+614*****077").count() == 0
    log = real.http.get(f"{real.url}/api/v2/eventLogs", params={"event_pattern": "sms.opt_out", "limit": 10}).json()
    assert {(e["event"], e["owner"]) for e in log["event_logs"]} >= {
        ("sms.opt_out.add", "admin"),
        ("sms.opt_out.remove", "admin"),
    }

    # Spend: three Cellcast messages at the connection's AU price.
    frame.locator("#conn").select_option("cellcast_default")
    open_tab(frame, "spend")
    summary = frame.locator("#view p.meta").first.inner_text()
    assert "3 message(s)" in summary and "0.1650" in summary
    assert "delivery_report" in frame.locator("table").nth(1).inner_text()
    shoot(page, "spend")
    assert errors == []


def test_a_viewer_sees_replies_as_text_and_the_register_read_only(
    airflow: tuple[RealAirflow, Any], browser: Any
) -> None:
    real, sandbox = airflow
    sandbox.store.add_message(direction="in", provider="cloudware", phone=REPLIER, text=MARKUP, status="received")
    inbox = f"{real.url}/sms/ui/api/inbox?conn_id=cloudware_default"
    wait_for(lambda: MARKUP in real.http.get(inbox, timeout=30).text, what="the second reply")
    page = signed_in(browser, real, "viewer")
    page.goto(real.url + "/sms/ui/")
    page.locator("#view[data-loaded=outbox]").wait_for()
    assert "signed in as viewer" in page.locator("#who").inner_text()
    page.locator("#conn").select_option("cloudware_default")
    page.locator(".tabs button[data-tab=inbox]").click()
    page.locator("#view[data-loaded=inbox] tbody tr").filter(has_text="Hi <img").wait_for()
    assert page.locator("#view img").count() == 0  # shown as text, never run as markup
    page.locator(".tabs button[data-tab=optouts]").click()
    page.locator("#view[data-loaded=optouts]").wait_for()
    assert "Read-only" in page.locator("#view").inner_text()
    assert page.locator("#optout-add").count() == 0
    answer = page.request.post(real.url + "/sms/ui/api/opt-outs", data={"number": OPTED})
    assert answer.status == 403  # the route refuses too, not only the page
