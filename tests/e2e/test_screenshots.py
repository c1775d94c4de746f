"""The README's screenshots, taken in Chromium through the same journeys (UPDATE_SCREENSHOTS=1 to refresh).

UPDATE_SCREENSHOTS=1 .venv/bin/pytest tests/e2e/test_screenshots.py
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from accounts.models import Ctid
from sandbox.control import Sandbox
from tests.helpers.journeys import ALICE, DEMO_TRADER, STAFF

from .steps import connect_ctid, press_control, sign_in, start_tradingview_link

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("UPDATE_SCREENSHOTS"), reason="set UPDATE_SCREENSHOTS=1"),
]


PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1200, "height": 800}


def _shot(page: Page, name: str, *, phone: bool = False) -> None:
    """The page at desktop width, and with ``phone`` also at a phone's width (``<name>-phone.png``)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    if phone:
        page.set_viewport_size(PHONE)
        phone_path = SCREENSHOTS / f"{name}-phone.png"
        page.screenshot(path=str(phone_path), full_page=True)
        assert phone_path.stat().st_size > 5_000
        page.set_viewport_size(DESKTOP)


def test_screenshots_of_the_main_pages(page: Page, browser, clientarea: str, sandbox: Sandbox):
    from accounts.tasks import refresh_ctid_token

    page.set_viewport_size({"width": 1200, "height": 800})
    page.goto(f"{clientarea}/account/login/")
    _shot(page, "sign-in", phone=True)

    sign_in(page, clientarea, *DEMO_TRADER)
    connect_ctid(page, clientarea, ALICE)
    _shot(page, "dashboard", phone=True)

    page.goto(f"{clientarea}/account/settings/")
    _shot(page, "settings", phone=True)
    page.goto(f"{clientarea}/account/two-factor/")
    _shot(page, "two-step-sign-in", phone=True)

    start_tradingview_link(page, sandbox)
    consent_url = page.url
    page.goto(re.sub(r"&lang=[^&]*", "", consent_url) + "&lang=de")
    _shot(page, "tradingview-consent-de", phone=True)
    page.goto(consent_url)
    page.get_by_role("checkbox", name=re.compile(r"Account 5100101\b")).check()
    _shot(page, "tradingview-consent")
    page.get_by_role("button", name="Use the chosen accounts").click()
    expect(page.locator("#links .accounts").first).to_contain_text("40000101")
    _shot(page, "tradingview-simulator")

    page.goto(f"{clientarea}/tradingview/")
    _shot(page, "tradingview-sessions", phone=True)

    press_control(page, sandbox, "Next refresh fails")
    refresh_ctid_token.apply(args=[Ctid.objects.get(user_id=ALICE).pk])
    page.goto(f"{clientarea}/")
    expect(page.get_by_role("alert").filter(has_text=f"cTrader ID {ALICE} needs")).to_be_visible()
    _shot(page, "reconnect-banner", phone=True)

    page.goto(f"{sandbox.url}/")
    _shot(page, "sandbox-control")

    staff_context = browser.new_context(viewport={"width": 1200, "height": 800})
    staff = staff_context.new_page()
    staff.goto(f"{clientarea}/admin/")
    staff.get_by_label("Username").fill(STAFF[0])
    staff.get_by_label("Password").fill(STAFF[1])
    staff.locator("main").get_by_role("button", name="Sign in").click()
    staff.goto(f"{clientarea}/admin/accounts/trader/")
    _shot(staff, "admin-traders")
    staff_context.close()
