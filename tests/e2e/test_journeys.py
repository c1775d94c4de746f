"""The journeys of the client area, clicked through in headless Chromium against the sandbox simulators."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from accounts.models import Ctid, CtidToken
from sandbox.control import Sandbox
from tests.helpers.journeys import ALICE, DEMO_TRADER, STAFF
from tradingview.models import Grant

from .steps import (
    confirm_sign_up_from_the_mail,
    connect_ctid,
    consent_on_ctrader_id,
    press_control,
    sign_in,
    sign_out,
    start_tradingview_link,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_sign_up_sign_out_and_sign_in_again(page: Page, clientarea: str):
    page.goto(f"{clientarea}/account/signup/")
    page.get_by_label("Username").fill("newtrader")
    page.get_by_label("Email").fill("newtrader@example.com")
    page.get_by_label(re.compile(r"^Password:?$")).fill("a-long-and-unusual-passphrase")
    page.get_by_label("Password again").fill("a-long-and-unusual-passphrase")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    confirm_sign_up_from_the_mail(page, "newtrader@example.com")
    expect(page.get_by_role("heading", name="Your trading accounts")).to_be_visible()
    expect(page.get_by_role("heading", name="No cTrader ID connected yet")).to_be_visible()

    sign_out(page)
    page.goto(f"{clientarea}/")
    expect(page).to_have_url(re.compile(r"/account/login/"))

    page.get_by_label("Username").fill("newtrader")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()

    sign_in(page, clientarea, "newtrader", "a-long-and-unusual-passphrase")
    expect(page.get_by_role("heading", name="Your trading accounts")).to_be_visible()
    sign_out(page)


def test_connect_a_ctid_and_see_its_accounts_and_balances(page: Page, clientarea: str, sandbox: Sandbox):
    sign_in(page, clientarea, *DEMO_TRADER)
    connect_ctid(page, clientarea, ALICE)

    section = page.locator("section", has=page.get_by_role("heading", name=f"cTrader ID {ALICE}"))
    expect(section.get_by_text("Connected", exact=True)).to_be_visible()
    rows = section.locator("tbody tr")
    expect(rows).to_have_count(3)
    # Balances as the simulated Open API reports them (integers scaled by 10^moneyDigits).
    expect(section.get_by_role("row", name=re.compile(r"5100101"))).to_contain_text("12,500.50 EUR")
    expect(section.get_by_role("row", name=re.compile(r"5100102"))).to_contain_text("100,000.00 EUR")
    expect(section.get_by_role("row", name=re.compile(r"5100103"))).to_contain_text("520.15 USD")
    expect(section.get_by_role("row", name=re.compile(r"5100101"))).to_contain_text("Live")
    expect(section.get_by_role("row", name=re.compile(r"5100102"))).to_contain_text("Demo")


def _link_accounts(page: Page, logins: list[int]) -> None:
    for checkbox in page.get_by_role("checkbox").all():
        checkbox.uncheck()
    for login in logins:
        page.get_by_role("checkbox", name=re.compile(rf"Account {login}\b")).check()
    page.get_by_role("button", name=re.compile(r"^(Use the chosen accounts|Try again)$")).click()


def test_link_accounts_to_tradingview_from_the_tradingview_page(
    page: Page, clientarea: str, sandbox: Sandbox
):
    sign_in(page, clientarea, *DEMO_TRADER)
    connect_ctid(page, clientarea, ALICE)

    start_tradingview_link(page, sandbox)
    _link_accounts(page, [5100101, 5100102])

    # Back on TradingView, which holds a working token for exactly the chosen accounts.
    expect(page).to_have_url(re.compile(r"/tradingview-sim/$"))
    expect(page.get_by_role("heading", name="TradingView simulator")).to_be_visible()
    accounts = page.locator("#links .accounts").first
    expect(accounts).to_contain_text("40000101")
    expect(accounts).to_contain_text("40000102")
    expect(accounts).not_to_contain_text("40000103")

    page.goto(f"{clientarea}/tradingview/")
    expect(page.get_by_role("link", name=re.compile(r"^Disconnect"))).to_have_count(1)


def test_an_adapter_error_is_shown_and_a_retry_links(page: Page, clientarea: str, sandbox: Sandbox):
    sign_in(page, clientarea, *DEMO_TRADER)
    connect_ctid(page, clientarea, ALICE)
    press_control(page, sandbox, "Adapter returns s:error on the next call")

    start_tradingview_link(page, sandbox)
    _link_accounts(page, [5100101])
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("Nothing was linked")
    assert not Grant.objects.exists()

    # The switch fired once; the same consent page retries and succeeds.
    _link_accounts(page, [5100101])
    expect(page).to_have_url(re.compile(r"/tradingview-sim/$"))
    expect(page.locator("#links .accounts").first).to_contain_text("40000101")


def test_a_dead_refresh_chain_shows_the_reconnect_banner_and_reconnecting_heals_it(
    page: Page, clientarea: str, sandbox: Sandbox
):
    from accounts.tasks import refresh_ctid_token

    sign_in(page, clientarea, *DEMO_TRADER)
    connect_ctid(page, clientarea, ALICE)
    press_control(page, sandbox, "Next refresh fails")

    ctid = Ctid.objects.get(user_id=ALICE)
    refresh_ctid_token.apply(args=[ctid.pk])  # what the sweep enqueues when the token is due
    ctid.refresh_from_db()
    assert ctid.state == Ctid.State.NEEDS_RECONNECT

    page.goto(f"{clientarea}/")
    banner = page.get_by_role("alert").filter(has_text=f"cTrader ID {ALICE} needs to be reconnected")
    expect(banner).to_be_visible()
    reconnect = banner.get_by_role("button", name=f"Reconnect cTrader ID {ALICE}").or_(
        banner.get_by_role("link", name=f"Reconnect cTrader ID {ALICE}")
    )
    reconnect.click()
    consent_on_ctrader_id(page, ALICE)

    expect(page.get_by_role("alert").filter(has_text=f"cTrader ID {ALICE} needs")).to_have_count(0)
    section = page.locator("section", has=page.get_by_role("heading", name=f"cTrader ID {ALICE}"))
    expect(section.get_by_text("Connected", exact=True)).to_be_visible()
    ctid.refresh_from_db()
    assert ctid.state == Ctid.State.CONNECTED
    assert ctid.token.state == CtidToken.State.ACTIVE


def test_disconnect_a_tradingview_grant(page: Page, clientarea: str, sandbox: Sandbox):
    sign_in(page, clientarea, *DEMO_TRADER)
    connect_ctid(page, clientarea, ALICE)
    start_tradingview_link(page, sandbox)
    _link_accounts(page, [5100101])
    expect(page.locator("#links .accounts").first).to_contain_text("40000101")
    (issued,) = sandbox.adapter.active_tokens()

    page.goto(f"{clientarea}/tradingview/")
    page.get_by_role("link", name=re.compile(r"^Disconnect")).click()
    # Asked first; nothing is disconnected until confirmed.
    expect(page.get_by_role("heading", name=re.compile(r"^Disconnect .*\?$"))).to_be_visible()
    assert not sandbox.adapter.is_revoked(issued)
    page.get_by_role("button", name="Disconnect").click()
    expect(page.get_by_role("link", name=re.compile(r"^Disconnect"))).to_have_count(0)
    expect(page.get_by_text("You have no TradingView session")).to_be_visible()
    # The adapter was told: the token TradingView holds no longer opens the accounts.
    assert sandbox.adapter.is_revoked(issued)


def test_staff_suspend_a_trader_and_the_traders_grants_are_revoked(
    page: Page, browser, clientarea: str, sandbox: Sandbox
):
    sign_in(page, clientarea, *DEMO_TRADER)
    connect_ctid(page, clientarea, ALICE)
    start_tradingview_link(page, sandbox)
    _link_accounts(page, [5100101, 5100103])
    expect(page.locator("#links .accounts").first).to_contain_text("40000103")
    (issued,) = sandbox.adapter.active_tokens()

    staff_context = browser.new_context()
    staff = staff_context.new_page()
    try:
        staff.goto(f"{clientarea}/admin/")
        staff.get_by_label("Username").fill(STAFF[0])
        staff.get_by_label("Password").fill(STAFF[1])
        staff.locator("main").get_by_role("button", name="Sign in").click()
        staff.goto(f"{clientarea}/admin/accounts/trader/")
        staff.get_by_role("row", name=re.compile(r"\bdemo\b")).get_by_role("checkbox").check()
        staff.get_by_role("combobox", name=re.compile(r"^Action")).select_option(label="Suspend")
        staff.get_by_role("button", name="Go").click()
        staff.get_by_label("Reason").fill("Chargeback under review")
        staff.get_by_role("button", name=re.compile(r"suspend", re.I)).click()
        expect(staff.get_by_text("1 trader(s) suspended.")).to_be_visible()
    finally:
        staff_context.close()

    assert sandbox.adapter.is_revoked(issued)
    assert not Grant.objects.filter(revoked_at__isnull=True).exists()
    # The trader's session is over, and signing in again is refused.
    page.goto(f"{clientarea}/")
    expect(page).to_have_url(re.compile(r"/account/login/"))
