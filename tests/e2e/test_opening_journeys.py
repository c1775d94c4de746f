"""Browser journeys for opening accounts: from the dashboard (demo), and inside a TradingView authorization
for a new visitor (case A) and a signed-in trader without an eligible account (case B).

Everything is real: the client area on a live server, the sandbox (WebServices, Open API, adapter, TradingView
simulators) on loopback, its SMTP server and mailbox page, and headless Chromium.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from accounts.ctrader.webservices import md5_hex
from accounts.models import AccountOpening, TradingAccount
from sandbox.control import SANDBOX_MANAGERS, Sandbox
from tests.helpers.journeys import DEMO_TRADER, Run

from .steps import sign_in, start_tradingview_link

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TRADING_PASSWORD = "Brow5er-Trading-Pw"


@pytest.fixture
def opening_area(clientarea: str, sandbox: Sandbox, settings, run_record: Run) -> str:
    """The client area with account opening pointed at the sandbox's WebServices and its SMTP server."""
    settings.CTRADER_WEBSERVICES_LIVE_URL = f"{sandbox.url}/webservices/live"
    settings.CTRADER_WEBSERVICES_DEMO_URL = f"{sandbox.url}/webservices/demo"
    settings.CTRADER_MANAGER_LIVE_LOGIN, settings.CTRADER_MANAGER_LIVE_PASSWORD = SANDBOX_MANAGERS["live"]
    settings.CTRADER_MANAGER_DEMO_LOGIN, settings.CTRADER_MANAGER_DEMO_PASSWORD = SANDBOX_MANAGERS["demo"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = sandbox.mailbox.host, sandbox.mailbox.port
    for _, password in SANDBOX_MANAGERS.values():
        run_record.secrets.update({password, md5_hex(password)})
    run_record.secrets.update({TRADING_PASSWORD, md5_hex(TRADING_PASSWORD)})
    return clientarea


def confirm_email_from_the_mailbox(page: Page, sandbox: Sandbox, email: str) -> None:
    """Ask for the link, then open it from the sandbox's mailbox page, in the same tab."""
    page.get_by_role("button", name="Send the confirmation link").click()
    expect(page.get_by_text(re.compile(r"We sent a confirmation link"))).to_be_visible()
    sandbox.mailbox.wait_for(to=email, subject_contains="Confirm")
    page.goto(f"{sandbox.url}/mail/")
    page.locator("article", has_text=email).first.get_by_role(
        "link", name=re.compile(r"email.verify")
    ).click()
    expect(page.get_by_text("Your email address is confirmed.")).to_be_visible()


def fill_opening_form(page: Page, *, currency: str = "EUR", leverage: str = "1:100") -> None:
    page.get_by_label("Deposit currency").select_option(currency)
    page.get_by_label("Leverage").select_option(label=leverage)
    page.get_by_label(re.compile(r"^Trading password:?$")).fill(TRADING_PASSWORD)
    page.get_by_label("Trading password again").fill(TRADING_PASSWORD)
    page.get_by_role("button", name="Open the account").click()
    expect(page.get_by_role("status").filter(has_text="Your account is ready.")).to_be_visible()


def assert_no_trading_password(page: Page) -> None:
    html = page.content()
    assert TRADING_PASSWORD not in html
    assert md5_hex(TRADING_PASSWORD) not in html


def test_open_a_demo_account_from_the_dashboard(page: Page, opening_area: str, sandbox: Sandbox):
    sign_in(page, opening_area, *DEMO_TRADER)
    page.get_by_role("link", name="Open an account").click()
    expect(page.get_by_role("heading", name="Confirm your email address")).to_be_visible()
    confirm_email_from_the_mailbox(page, sandbox, "demo@example.test")
    page.get_by_role("link", name="cTrader/TradingView demo").click()
    fill_opening_form(page, currency="USD", leverage="1:200")
    assert_no_trading_password(page)
    opening = AccountOpening.objects.get(trader__user__username="demo")
    account = TradingAccount.objects.get(pk=opening.account_id)
    expect(page.locator("[data-opening-login]")).to_have_text(str(account.login))
    sandbox.mailbox.wait_for(to="demo@example.test", subject_contains="is ready")

    page.get_by_role("link", name="Go to your accounts").click()
    row = page.get_by_role("row", name=re.compile(rf"{account.login}"))
    expect(row).to_contain_text("Demo")
    expect(row).to_contain_text("10,000.00 USD")
    # The simulated broker knows it, linked to the trader's new cTID.
    simulated = sandbox.world.account(account.ctid_trader_account_id)
    assert simulated is not None
    assert simulated.trader_login == account.login


def _link_new_account(page: Page, account: TradingAccount, sandbox: Sandbox) -> None:
    """On the consent page the new account is already ticked; linking returns to TradingView with it."""
    expect(page.get_by_role("heading", name="Use your accounts on TradingView")).to_be_visible(timeout=20_000)
    box = page.get_by_role("checkbox", name=re.compile(rf"Account {account.login}\b"))
    expect(box).to_be_checked()
    page.get_by_role("button", name="Use the chosen accounts").click()
    expect(page).to_have_url(re.compile(r"/tradingview-sim/"))
    expect(page.locator("#links .accounts").first).to_contain_text(str(account.ctid_trader_account_id))
    generated = sandbox.adapter.calls_to("/generate/token")[-1].json
    assert generated["ctidTraderAccountIds"] == [account.ctid_trader_account_id]


def test_case_b_signed_in_without_an_eligible_account(page: Page, opening_area: str, sandbox: Sandbox):
    sign_in(page, opening_area, *DEMO_TRADER)
    start_tradingview_link(page, sandbox)
    authorize_url = page.url
    with page.expect_popup() as opened:
        page.get_by_role("link", name="Open an account").click()
    tab = opened.value
    expect(tab.get_by_role("heading", name="Confirm your email address")).to_be_visible()
    confirm_email_from_the_mailbox(tab, sandbox, "demo@example.test")
    # Only "cTrader/TradingView" types this trader may open: one, so straight to its form.
    expect(tab.get_by_role("heading", name="Open a cTrader/TradingView demo account")).to_be_visible()
    fill_opening_form(tab)
    expect(tab.get_by_text("Go back to the TradingView tab")).to_be_visible()
    assert_no_trading_password(tab)
    account = TradingAccount.objects.get(opening__trader__user__username="demo")

    # The authorization tab noticed by itself, keeping the original request (state included).
    _link_new_account(page, account, sandbox)
    assert "state=" in authorize_url


def test_case_a_new_visitor_from_tradingview_to_a_linked_account(
    page: Page, opening_area: str, sandbox: Sandbox
):
    page.goto(f"{sandbox.url}/tradingview-sim/")
    page.get_by_role("link", name="Connect broker accounts").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    # The authorization page offers sign-in only; registration opens in a new tab.
    expect(page.get_by_role("link", name="Open an account")).to_have_attribute("target", "_blank")
    with page.expect_popup() as opened:
        page.get_by_role("link", name="Open an account").click()
    tab = opened.value
    tab.get_by_label("Username").fill("tvnewcomer")
    tab.get_by_label("Email").fill("tvnewcomer@example.com")
    tab.get_by_label(re.compile(r"^Password:?$")).fill("a-long-and-unusual-passphrase")
    tab.get_by_label("Password again").fill("a-long-and-unusual-passphrase")
    tab.get_by_role("button", name="Create account").click()
    expect(tab.get_by_role("heading", name="Check your inbox")).to_be_visible()
    # The sign-up link confirms the address: the opening goes straight on to the form.
    sandbox.mailbox.wait_for(to="tvnewcomer@example.com", subject_contains="Finish creating")
    tab.goto(f"{sandbox.url}/mail/")
    tab.locator("article", has_text="tvnewcomer@example.com").first.get_by_role(
        "link", name=re.compile(r"signup.confirm")
    ).click()
    fill_opening_form(tab)
    assert_no_trading_password(tab)
    account = TradingAccount.objects.get(opening__trader__user__username="tvnewcomer")
    assert account.is_tradingview
    assert not account.is_live
    # A new cTID, created through the WebServices for the verified email.
    assert account.ctid.user_id == sandbox.world.ctid_emails["tvnewcomer@example.com"]

    _link_new_account(page, account, sandbox)
