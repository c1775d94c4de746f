"""Steps the journeys share, written as a trader or a staff member would click through them."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect

from sandbox.control import Sandbox


def sign_in(page: Page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/account/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def confirm_sign_up_from_the_mail(page: Page, email: str) -> None:
    """Open the link of the sign-up mail in the same tab: the browser that signed up is signed in by it."""
    from django.core import mail

    deadline = time.monotonic() + 10
    while not (sent := [m for m in mail.outbox if email in m.to]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sent, f"no sign-up mail to {email}"
    page.goto(re.search(r"https?://\S+/account/signup/confirm/\S+", sent[-1].body).group(0))


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def consent_on_ctrader_id(page: Page, ctid_user_id: int) -> None:
    """On the simulated cTrader ID consent page: pick the cTID, keep every account ticked, allow."""
    expect(page).to_have_url(re.compile(r"/ctrader-id/grantingaccess/"))
    page.locator(f'input[name="user_id"][value="{ctid_user_id}"]').check()
    page.get_by_role("button", name="Allow access").click()


def connect_ctid(page: Page, base: str, ctid_user_id: int) -> None:
    page.goto(f"{base}/")
    page.get_by_role("button", name=re.compile(r"^Connect (another )?cTrader ID$")).first.click()
    consent_on_ctrader_id(page, ctid_user_id)
    # The connect finishes in a worker; the dashboard follows it and reloads when it is done.
    expect(page.get_by_role("heading", name=f"cTrader ID {ctid_user_id}")).to_be_visible(timeout=20_000)


def press_control(page: Page, sandbox: Sandbox, button: str) -> None:
    """Press a button on the sandbox control page, as the evaluator would."""
    page.goto(f"{sandbox.url}/")
    page.get_by_role("button", name=button).first.click()
    expect(page.get_by_role("status")).to_be_visible()


def start_tradingview_link(page: Page, sandbox: Sandbox) -> None:
    """From the TradingView simulator to the client area's consent page."""
    page.goto(f"{sandbox.url}/tradingview-sim/")
    page.get_by_role("link", name="Connect broker accounts").click()
    expect(page.get_by_role("heading", name="Use your accounts on TradingView")).to_be_visible()
