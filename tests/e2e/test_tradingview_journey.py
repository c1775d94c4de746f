"""Browser journey: a simulated TradingView page links accounts through the client area in headless Chromium."""

from __future__ import annotations

from contextlib import closing

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.models import Ctid, Jurisdiction, Trader
from sandbox import adapter as adapter_module
from sandbox import tradingview as tradingview_module
from sandbox.httpd import serve
from tests.browser import ARTIFACTS
from tests.helpers.tradingview import BROKER_BEARER, make_account
from tradingview.models import Grant
from tradingview.services.clients import oauth_client_ensure


@pytest.fixture
def peers(settings, live_server):
    sim = adapter_module.AdapterSim(bearer=BROKER_BEARER)
    adapter_server = serve(adapter_module.routes(bearer=BROKER_BEARER, sim=sim))
    settings.TRADINGVIEW_ADAPTER_URL = f"{adapter_server.url}/adapter"
    settings.TRADINGVIEW_ADAPTER_TOKEN = BROKER_BEARER
    tv_server = serve([])
    client = oauth_client_ensure(
        client_id="tv-e2e",
        client_secret="tv-e2e-secret",
        name="TradingView",
        redirect_uri=f"{tv_server.url}/tradingview-sim/callback",
    )
    tv_server.add_routes(
        tradingview_module.routes(
            clientarea_url=live_server.url,
            client_id=client.client_id,
            client_secret="tv-e2e-secret",
            self_url=tv_server.url,
            adapter_url=f"{adapter_server.url}/adapter",
        )
    )
    yield sim, tv_server.url
    tv_server.stop()
    adapter_server.stop()


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_tradingview_links_accounts_through_sign_in_and_consent(peers, browser, request):
    sim, tv_url = peers
    user = get_user_model().objects.create_user("bob", "bob@example.com", "correct-horse-battery")
    trader = Trader.objects.create(user=user, kyc_verified=True, kyc_verified_at=timezone.now())
    ctid = Ctid.objects.create(user_id=24680, trader=trader)
    jurisdiction = Jurisdiction.objects.create(
        broker_name="BESTBROKER", display_name="Best Broker", tradingview_enabled=True
    )
    live = make_account(ctid, 137780091, live=True, jurisdiction=jurisdiction, is_tradingview=True)

    from playwright.sync_api import expect

    # The folder's Chromium (conftest.py): a second Playwright could not start in this thread while it runs.
    with closing(browser.new_context()) as context:
        page = context.new_page()
        try:
            page.goto(f"{tv_url}/tradingview-sim/")
            page.get_by_role("link", name="Connect broker accounts").click()

            # The client area asks the trader to sign in, keeping the authorization request.
            page.wait_for_url("**/account/login/**")
            page.fill('input[name="username"]', "bob")
            page.fill('input[name="password"]', "correct-horse-battery")
            page.get_by_role("button", name="Sign in").click()

            expect(page.get_by_role("heading", name="Use your accounts on TradingView")).to_be_visible()
            checkbox = page.locator(f'input[name="accounts"][value="{live.pk}"]')
            expect(checkbox).to_be_checked()  # the "cTrader/TradingView" account is preselected
            page.get_by_role("button", name="Use the chosen accounts").click()

            # Back on TradingView, whose server exchanged the code for the adapter token.
            page.wait_for_url(f"{tv_url}/tradingview-sim/")
            token = page.locator(".access-token").first
            expect(token).to_be_visible()
            [issued] = sim.active_tokens()
            assert token.inner_text() == issued
            assert page.locator(".accounts").first.inner_text() == "137780091"
        except Exception:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
            raise

    grant = Grant.objects.get()
    assert grant.state == Grant.State.ACTIVE
    assert grant.codes.get().used_at is not None
