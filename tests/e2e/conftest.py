"""Browser journeys: headless Chromium against a live server and the sandbox simulators on loopback.

Every journey gets a fresh ``Sandbox`` (cTrader ID, Open API live and demo, the TradingView adapter and
TradingView) on free ports, the client area's settings pointed at it, and a fresh browser context (but
test_tradingview_journey.py, which brings its own peers). Every log
record written during the journeys is kept unscrubbed, together with every secret the run used, for the
final scan (test_logs_have_no_secrets.py and the end of ``run_record``).
"""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Iterator

import pytest
from django.core.management import call_command

from sandbox.control import Endpoint, Sandbox
from tests.browser import ARTIFACTS, launch_chromium, record_csp_violations
from tests.helpers.journeys import (
    ADAPTER_BEARER,
    SANDBOX_APP_ID,
    SANDBOX_APP_SECRET,
    TRADINGVIEW_CLIENT_ID,
    TRADINGVIEW_CLIENT_SECRET,
    Run,
    leaked_secrets,
)


@pytest.fixture(autouse=True)
def _journey_log_attached(request: pytest.FixtureRequest) -> None:
    """Every journey on the sandbox is logged into the session's record, even if a test run before it (in
    random order) reset the root logger's handlers or level.

    A journey with peers of its own (test_tradingview_journey.py) is left out: the record scans the logs for
    the secrets of the sandboxes, which it does not use.
    """
    if "sandbox" not in request.fixturenames:
        return
    run_record: Run = request.getfixturevalue("run_record")
    root = logging.getLogger()
    if run_record.log not in root.handlers:
        root.addHandler(run_record.log)
    root.setLevel(logging.DEBUG)
    for name in ("accounts", "tradingview", "clientarea", "sandbox"):
        logging.getLogger(name).disabled = False


@pytest.fixture(scope="session")
def run_record() -> Iterator[Run]:
    record = Run()
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(record.log)
    # Everything the code logs at any level; library loggers keep the levels the settings give them.
    root.setLevel(logging.DEBUG)
    yield record
    root.removeHandler(record.log)
    root.setLevel(previous_level)
    # The journeys that ran after test_logs_have_no_secrets.py (tests run in a random order).
    leaks = leaked_secrets(record)
    if leaks:
        pytest.fail(f"{len(leaks)} log line(s) written during the journeys carry a secret: {leaks[:5]}")


@pytest.fixture(scope="package")
def browser():
    """One Chromium for this folder's journeys, closed with the folder.

    Playwright's sync API keeps an event loop running in the test thread while it is open, so it must not
    outlive these tests (asyncio.run elsewhere would fail), and the ORM calls the journeys make from that
    thread are allowed only meanwhile.
    """
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = launch_chromium(playwright)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    violations = record_csp_violations(context)
    page = context.new_page()
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    context.close()
    # Every page of every journey runs under the Content-Security-Policy without a single violation.
    assert violations == [], violations


@pytest.fixture
def sandbox(live_server, run_record) -> Iterator[Sandbox]:
    loopback = Endpoint("127.0.0.1", 0)
    box = Sandbox(
        http=loopback,
        live=loopback,
        demo=loopback,
        clientarea_url=live_server.url,
        ctrader_client_id=SANDBOX_APP_ID,
        ctrader_client_secret=SANDBOX_APP_SECRET,
        adapter_bearer=ADAPTER_BEARER,
        tradingview_client_id=TRADINGVIEW_CLIENT_ID,
        tradingview_client_secret=TRADINGVIEW_CLIENT_SECRET,
    )
    box.start()
    try:
        yield box
    finally:
        run_record.collect(box)
        run_record.journeys += 1
        box.stop()


@pytest.fixture
def clientarea(live_server, sandbox, settings) -> str:
    """The live client area, pointed at this test's sandbox, with the demo data seeded."""
    from clientarea.logs import reset_known_secrets
    from sandbox.clients import tradingview_client_ensure_sandbox

    settings.SANDBOX = True
    settings.SANDBOX_HTTP = sandbox.url
    settings.SITE_URL = live_server.url
    settings.CTRADER_CLIENT_ID = SANDBOX_APP_ID
    settings.CTRADER_CLIENT_SECRET = SANDBOX_APP_SECRET
    settings.CTRADER_REDIRECT_URI = f"{live_server.url}/ctrader/callback/"
    settings.CTRADER_AUTH_URL = f"{sandbox.url}/ctrader-id/grantingaccess/"
    settings.CTRADER_TOKEN_URL = f"{sandbox.url}/ctrader-id/apps/token"
    settings.CTRADER_OPENAPI_LIVE_URL = sandbox.openapi["live"].url
    settings.CTRADER_OPENAPI_DEMO_URL = sandbox.openapi["demo"].url
    settings.TRADINGVIEW_ADAPTER_URL = f"{sandbox.url}/adapter"
    settings.TRADINGVIEW_ADAPTER_TOKEN = ADAPTER_BEARER
    reset_known_secrets()
    call_command("seed_demo", stdout=io.StringIO())
    tradingview_client_ensure_sandbox(sandbox_url=sandbox.url)
    return live_server.url
