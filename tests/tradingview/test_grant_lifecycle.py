"""Grants end when what they stand on ends: a client deactivated, an account no longer eligible, a code never
exchanged. Registration accepts only redirect URIs TradingView may use, and the sign-in page of an
authorization offers nothing but the authorization."""

from __future__ import annotations

import re
import time

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import AuditEvent, TradingAccount
from tests.helpers.tradingview import authorize_params, exchange, link
from tradingview import tasks
from tradingview.models import Grant, OAuthClient
from tradingview.services.clients import oauth_client_create


def _linked(tv_client, browser_client, accounts) -> dict:
    return exchange(tv_client, link(browser_client, tv_client, [a.pk for a in accounts])).json()


def _shows_linked(browser_client) -> bool:
    return b"Disconnect" in browser_client.get("/tradingview/").content


# --- deactivating a client -----------------------------------------------------------------------------------


def test_deactivating_a_client_with_the_command_revokes_its_grants(
    adapter, tv_client, browser_client, accounts, django_capture_on_commit_callbacks
):
    first = _linked(tv_client, browser_client, accounts)
    assert _shows_linked(browser_client)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("tradingview_client", "deactivate", tv_client.client.client_id)
    [logout] = adapter.sim.calls_to("/logout")
    assert logout.headers["authorization"] == f"Bearer {first['access_token']}"
    assert Grant.objects.get().state == Grant.State.REVOKED
    assert not _shows_linked(browser_client)
    assert AuditEvent.objects.filter(category="tradingview", action="client_deactivated").exists()


def test_deactivating_a_client_in_the_admin_revokes_its_grants(
    adapter, tv_client, browser_client, accounts, staff_client, django_capture_on_commit_callbacks
):
    first = _linked(tv_client, browser_client, accounts)
    client = tv_client.client
    uri = client.redirect_uris.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            f"/admin/tradingview/oauthclient/{client.pk}/change/",
            {
                "name": client.name,
                "environment": client.environment,
                # is_active left out: unchecked
                "redirect_uris-TOTAL_FORMS": "1",
                "redirect_uris-INITIAL_FORMS": "1",
                "redirect_uris-MIN_NUM_FORMS": "1",
                "redirect_uris-MAX_NUM_FORMS": "1000",
                "redirect_uris-0-id": str(uri.pk),
                "redirect_uris-0-client": str(client.pk),
                "redirect_uris-0-uri": uri.uri,
            },
        )
    assert response.status_code == 302, response.content[:2000]
    client.refresh_from_db()
    assert not client.is_active
    assert [c.headers["authorization"] for c in adapter.sim.calls_to("/logout")] == [
        f"Bearer {first['access_token']}"
    ]
    assert not _shows_linked(browser_client)


# --- eligibility lost -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change", ["jurisdiction_closed", "account_gone", "account_disabled", "only_tradingview"]
)
def test_a_linked_account_that_is_no_longer_eligible_revokes_its_grants_within_the_sweep(
    change,
    settings,
    adapter,
    tv_client,
    browser_client,
    accounts,
    jurisdiction,
    django_capture_on_commit_callbacks,
):
    # accounts[1] is not a "cTrader/TradingView" account.
    first = _linked(tv_client, browser_client, accounts)
    other = _linked(tv_client, browser_client, [accounts[0]])
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.grant_revocation_sweep() == 0
    assert adapter.sim.calls_to("/logout") == []

    if change == "jurisdiction_closed":
        jurisdiction.tradingview_enabled = False
        jurisdiction.save()
    elif change == "account_gone":
        TradingAccount.objects.filter(pk=accounts[1].pk).update(status=TradingAccount.Status.GONE)
    elif change == "account_disabled":
        TradingAccount.objects.filter(pk=accounts[1].pk).update(status=TradingAccount.Status.DISABLED)
    else:
        settings.TRADINGVIEW_ONLY_TRADINGVIEW_ACCOUNTS = True

    with django_capture_on_commit_callbacks(execute=True):
        tasks.grant_revocation_sweep()
    revoked = {c.headers["authorization"] for c in adapter.sim.calls_to("/logout")}
    assert f"Bearer {first['access_token']}" in revoked
    if change == "jurisdiction_closed":
        # Both grants carry an account of the closed jurisdiction.
        assert revoked == {f"Bearer {first['access_token']}", f"Bearer {other['access_token']}"}
    else:
        # The grant of the still eligible account alone is untouched.
        assert revoked == {f"Bearer {first['access_token']}"}
        assert Grant.objects.filter(state=Grant.State.ACTIVE).count() == 1
    assert AuditEvent.objects.filter(category="tradingview", action="ineligible_grants_revoke").exists()


def test_deleting_a_linked_account_revokes_its_grants(
    adapter, tv_client, browser_client, accounts, django_capture_on_commit_callbacks
):
    first = _linked(tv_client, browser_client, accounts)
    with django_capture_on_commit_callbacks(execute=True):
        TradingAccount.objects.filter(pk=accounts[1].pk).delete()
    [logout] = adapter.sim.calls_to("/logout")
    assert logout.headers["authorization"] == f"Bearer {first['access_token']}"
    assert not _shows_linked(browser_client)


def test_the_sweep_runs_at_least_once_a_minute():
    entry = django_settings.CELERY_BEAT_SCHEDULE["tradingview-revocation-sweep"]
    assert entry["task"] == "tradingview.tasks.grant_revocation_sweep"
    assert float(entry["schedule"]) <= 60


# --- a code never exchanged ---------------------------------------------------------------------------------------


def test_a_consent_whose_code_is_never_exchanged_is_logged_out_once_the_code_expired(
    settings, adapter, tv_client, browser_client, accounts, django_capture_on_commit_callbacks
):
    settings.TRADINGVIEW_CODE_TTL_SECONDS = 1
    link(browser_client, tv_client, [accounts[0].pk])  # TradingView never comes back with the code
    exchanged = _linked(tv_client, browser_client, [accounts[1]])
    with django_capture_on_commit_callbacks(execute=True):
        tasks.grant_revocation_sweep()
    assert adapter.sim.calls_to("/logout") == []  # the code is still valid
    time.sleep(1.2)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.grant_revocation_sweep()
    [logout] = adapter.sim.calls_to("/logout")
    assert logout.headers["authorization"] != f"Bearer {exchanged['access_token']}"
    assert Grant.objects.filter(state=Grant.State.ACTIVE).count() == 1
    page = browser_client.get("/tradingview/").content.decode()
    assert page.count('class="button danger" href="/tradingview/grants/') == 1


# --- redirect URIs ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "https://tv.example/cb",
        "http://127.0.0.1:8001/tradingview-sim/callback",
        "http://127.10.20.30/cb",
        "http://localhost:3000/cb",
        "http://[::1]:8080/cb",
    ],
)
def test_https_and_loopback_redirect_uris_are_registered(db, uri):
    client, _ = oauth_client_create(name="x", redirect_uris=[uri])
    assert list(client.redirect_uris.values_list("uri", flat=True)) == [uri]


@pytest.mark.parametrize(
    "uri",
    ["http://tv.example/cb", "http://10.0.0.5/cb", "http://localhost.tv.example/cb", "ftp://tv.example/x"],
)
def test_other_redirect_uris_are_refused_everywhere_with_a_clear_message(db, uri, staff_client):
    with pytest.raises(ValueError, match="https"):
        oauth_client_create(name="x", redirect_uris=[uri])
    with pytest.raises(CommandError, match="https"):
        call_command("tradingview_client", "add", "--name", "x", "--redirect-uri", uri)
    response = staff_client.post(
        "/admin/tradingview/oauthclient/add/",
        {
            "name": "x",
            "is_active": "on",
            "redirect_uris-TOTAL_FORMS": "1",
            "redirect_uris-INITIAL_FORMS": "0",
            "redirect_uris-MIN_NUM_FORMS": "1",
            "redirect_uris-MAX_NUM_FORMS": "1000",
            "redirect_uris-0-uri": uri,
        },
    )
    assert response.status_code == 200
    assert "https" in response.content.decode()
    assert not OAuthClient.objects.exists()


# --- the sign-in page of an authorization -------------------------------------------------------------------------


def _links(html: str) -> list[str]:
    return re.findall(r"<a\b[^>]*>", html)


def test_the_sign_in_page_of_an_authorization_offers_only_the_authorization(db, tv_client):
    browser = Client()
    start = browser.get("/tradingview/oauth/authorize", authorize_params(tv_client))
    assert start.status_code == 302
    page = browser.get(start["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    header = html.split("<main")[0]
    # No site navigation: no link to the dashboard or to the site's other pages in the header.
    assert "/account/signup/" not in header
    assert 'href="/"' not in header
    assert 'class="brand" href' not in header
    # Password reset and sign-up open in a new tab, so the authorization stays where it is.
    body = html.split("<main")[1]
    for tag in _links(body):
        if "/account/password/reset/" in tag or "/account/signup/" in tag:
            assert 'target="_blank"' in tag, tag
            assert "noopener" in tag, tag
    assert any("/account/signup/" in tag for tag in _links(body))
    assert any("/account/password/reset/" in tag for tag in _links(body))


def test_the_ordinary_sign_in_page_keeps_the_site_navigation(db):
    html = Client().get("/account/login/").content.decode()
    header = html.split("<main")[0]
    assert "/account/signup/" in header
    assert 'target="_blank"' not in html
