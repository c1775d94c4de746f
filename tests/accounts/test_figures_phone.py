"""On a phone-sized screen in headless Chromium: the figures and the chart fit the screen, and the table of
values opens from the chart."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.browser import launch_chromium
from tests.factories import PASSWORD

from .test_figures_pages_and_api import _snapshots, accounts_of, give_figures

PHONE = {"width": 375, "height": 740}


@pytest.fixture
def phone():
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = launch_chromium(playwright)
            context = chromium.new_context(viewport=PHONE)
            context.set_default_timeout(15_000)
            yield context.new_page()
            context.close()
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.mark.django_db(transaction=True)
def test_figures_and_chart_fit_a_phone_screen(phone, live_server, trader):
    account = accounts_of(trader, 1)[0]
    give_figures(account, balance="123456.78", equity="120001.23", used="5000.00")
    _snapshots(account, timezone.now() - timedelta(hours=5), 60, timedelta(minutes=5))

    phone.goto(f"{live_server.url}/account/login/")
    phone.fill("input[name=username]", trader.user.username)
    phone.fill("input[name=password]", PASSWORD)
    phone.click("button[type=submit]")
    phone.wait_for_url(f"{live_server.url}/")

    def overflow() -> int:
        return phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")

    assert phone.get_by_text("120,001.23").first.is_visible()
    assert overflow() <= 0
    phone.goto(f"{live_server.url}/accounts/{account.ctid_trader_account_id}/?period=day")
    chart = phone.locator("svg.chart")
    # Every line is drawn inside the chart (a markup slip would let the parser move them out of the SVG).
    assert phone.evaluate("document.querySelectorAll('svg.chart polyline.series-equity').length") == 1
    box = chart.bounding_box()
    assert box is not None
    assert 300 <= box["width"] <= PHONE["width"]
    assert box["height"] > 100
    assert overflow() <= 0
    # The balance and equity lines are drawn with the stylesheet's colours (no inline style).
    stroke = phone.evaluate("getComputedStyle(document.querySelector('.series-equity')).stroke")
    assert stroke not in ("", "none")
    phone.get_by_text("Show the values as a table").click()
    assert phone.locator("details table").is_visible()
    assert phone.get_by_text("1,059.00").first.is_visible()
