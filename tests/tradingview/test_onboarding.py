"""The TradingView side of cases A and B without a browser: the waiting tab's status endpoint, the sign-in
page's new-tab link, the page for a trader without an eligible account, and the pre-ticked new account."""

from __future__ import annotations

import secrets
from datetime import timedelta
from urllib.parse import quote, urlencode

import pytest
from django.test import Client

from accounts.models import AccountOpening
from accounts.services import opening as service
from tests.helpers.webservices import TRADING_PASSWORD, verified_trader
from tradingview.models import OAuthClient
from tradingview.services.clients import oauth_client_ensure

pytestmark = pytest.mark.django_db

REDIRECT = "https://tv.example/callback"


@pytest.fixture
def tv_client(db: None) -> OAuthClient:
    return oauth_client_ensure(
        client_id="tv-onboarding", client_secret="s" * 32, name="TV", redirect_uri=REDIRECT
    )


def authorize_path(client: OAuthClient) -> str:
    query = urlencode(
        {"response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT, "state": "st-123"}
    )
    return f"/tradingview/oauth/authorize?{query}"


def test_status_endpoint_for_a_visitor_and_a_trader(
    webservices, demo_type, django_capture_on_commit_callbacks
) -> None:
    anonymous = Client().get("/tradingview/oauth/onboarding-status")
    assert anonymous.json() == {"signed_in": False, "ready": False}
    assert "no-store" in anonymous["Cache-Control"]
    trader = verified_trader()
    client = Client()
    client.force_login(trader.user)
    assert client.get("/tradingview/oauth/onboarding-status").json() == {"signed_in": True, "ready": False}
    with django_capture_on_commit_callbacks(execute=True):
        service.account_opening_start(
            trader=trader,
            request=service.OpeningRequest(
                account_type=demo_type, deposit_currency="EUR", leverage=30, key=secrets.token_urlsafe(6),
                source=AccountOpening.Source.TRADINGVIEW,
            ),
            password=TRADING_PASSWORD,
        )  # fmt: skip
    assert client.get("/tradingview/oauth/onboarding-status").json() == {"signed_in": True, "ready": True}


def test_sign_in_page_of_an_authorization_opens_registration_in_a_new_tab(
    webservices, demo_type, tv_client
) -> None:
    path = authorize_path(tv_client)
    page = Client().get(f"/account/login/?next={quote(path, safe='')}")
    html = page.content.decode()
    assert 'target="_blank"' in html
    assert "/account/signup/?next=%2Fopen%2F%3Ftv%3D1" in html
    assert "data-tradingview-continue" in html
    assert "st-123" in html
    plain = Client().get("/account/login/").content.decode()
    assert "data-tradingview-continue" not in plain


def test_case_b_page_offers_opening_and_consent_ticks_the_new_account(
    webservices, demo_type, tv_client, django_capture_on_commit_callbacks
) -> None:
    trader = verified_trader()
    client = Client()
    client.force_login(trader.user)
    path = authorize_path(tv_client)
    waiting = client.get(path).content.decode()
    assert 'href="/open/?tv=1"' in waiting
    assert 'target="_blank"' in waiting
    assert (
        "<form" not in waiting.split("Open an account")[0].split("<main")[-1]
    )  # no sign-up form on the page
    with django_capture_on_commit_callbacks(execute=True):
        opening = service.account_opening_start(
            trader=trader,
            request=service.OpeningRequest(
                account_type=demo_type, deposit_currency="EUR", leverage=30, key=secrets.token_urlsafe(6),
                source=AccountOpening.Source.TRADINGVIEW,
            ),
            password=TRADING_PASSWORD,
        )  # fmt: skip
    opening.refresh_from_db()
    consent = client.get(path)
    assert consent.status_code == 200
    assert consent.context["checked"] == {opening.account_id}
    assert "st-123" in consent.context["authz"].state
    # Opened longer ago than the window, or opened from the dashboard: offered, not ticked.
    finished = opening.finished_at
    assert finished is not None
    too_old = finished - timedelta(seconds=service.TRADINGVIEW_PRESELECT_SECONDS + 1)
    AccountOpening.objects.filter(pk=opening.pk).update(finished_at=too_old)
    assert client.get(path).context["checked"] == set()
    AccountOpening.objects.filter(pk=opening.pk).update(
        finished_at=finished, source=AccountOpening.Source.DASHBOARD
    )
    assert client.get(path).context["checked"] == set()
