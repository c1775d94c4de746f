"""What the trader sees on the authorization page, account requests, the admin and the command."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import AuditEvent, Ctid, TradingAccount
from accounts.services.traders import trader_suspend
from sandbox.clients import tradingview_client_ensure_sandbox
from sandbox.tradingview import SANDBOX_CLIENT_SECRET
from tests.helpers.tradingview import REDIRECT_URI, STATE, authorize_params, make_account, redirect_query
from tradingview.models import AccountRequest, Grant, OAuthClient
from tradingview.services.account_requests import account_request_fulfil


def test_consent_page_lists_eligible_accounts_and_explains_the_others(
    tv_client, browser_client, trader, ctid, accounts, jurisdiction, jurisdiction_disabled
):
    make_account(ctid, 300000001, live=True, jurisdiction=jurisdiction_disabled)
    make_account(ctid, 300000002, live=False, jurisdiction=jurisdiction, status=TradingAccount.Status.GONE)
    broken = Ctid.objects.create(user_id=777, trader=trader, state=Ctid.State.NEEDS_RECONNECT)
    make_account(broken, 300000003, live=True, jurisdiction=jurisdiction)

    response = browser_client.get("/tradingview/oauth/authorize", authorize_params(tv_client))
    assert response.status_code == 200
    html = response.content.decode()
    checkboxes = re.findall(r'name="accounts" value="(\d+)"', html)
    assert sorted(int(v) for v in checkboxes) == sorted(a.pk for a in accounts)
    assert "cTrader/TradingView" in html
    assert "Live" in html
    assert "Demo" in html
    assert "Other WL accounts cannot be used on TradingView." in html
    assert "You no longer share this account with us." in html
    assert "needs to be reconnected" in html
    # Only what the authorization needs: no site navigation on this page.
    assert "/account/password/change/" not in html


def test_denying_returns_access_denied_with_the_state(tv_client, browser_client, accounts):
    response = browser_client.get("/tradingview/oauth/authorize", authorize_params(tv_client))
    nonce = re.search(rb'name="consent" value="([^"]+)"', response.content).group(1).decode()
    query = redirect_query(
        browser_client.post("/tradingview/oauth/authorize", {"consent": nonce, "action": "deny"})
    )
    assert query["error"] == ["access_denied"]
    assert query["state"] == [STATE]
    assert not Grant.objects.exists()


def test_consent_with_an_unknown_nonce_is_refused(tv_client, browser_client, accounts):
    response = browser_client.post(
        "/tradingview/oauth/authorize", {"consent": "forged", "accounts": [accounts[0].pk]}
    )
    assert response.status_code == 400
    assert "Location" not in response


def test_without_eligible_accounts_the_trader_can_request_one_and_come_back(
    tv_client, browser_client, trader, jurisdiction
):
    authorize_url = "/tradingview/oauth/authorize?" + "&".join(
        f"{k}={v}" for k, v in authorize_params(tv_client, state="s1").items()
    )
    page = browser_client.get(authorize_url)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'Ask for a "cTrader/TradingView" account' in html
    request_url = re.search(r'href="(/tradingview/account-request/\?next=[^"]+)"', html).group(1)

    form = browser_client.get(request_url.replace("&amp;", "&"))
    assert form.status_code == 200
    assert b"cTrader/TradingView live account" in form.content
    next_value = (
        re.search(rb'name="next" value="([^"]*)"', form.content).group(1).decode().replace("&amp;", "&")
    )
    assert next_value == authorize_url

    done = browser_client.post(
        "/tradingview/account-request/",
        {"environment": "live", "jurisdiction": jurisdiction.pk, "note": "", "next": next_value},
    )
    assert done.status_code == 302
    assert done["Location"] == authorize_url
    request = AccountRequest.objects.get()
    assert request.trader == trader
    assert request.return_url == authorize_url
    back = browser_client.get(authorize_url)
    assert b"We are working on your request" in back.content

    # Staff open the account and fulfil the request; the same authorization now offers it.
    ctid = Ctid.objects.create(user_id=5150, trader=trader)
    account = make_account(ctid, 401000001, live=True, jurisdiction=jurisdiction)
    staff = get_user_model().objects.create_superuser("staff", "staff@example.com", "pw-staff-123")
    account_request_fulfil(account_request=request, account=account, actor=staff)
    account.refresh_from_db()
    assert account.is_tradingview
    again = browser_client.get(authorize_url)
    assert f'value="{account.pk}"'.encode() in again.content
    index = browser_client.get("/tradingview/").content.decode()
    assert "Continue to TradingView" in index


def test_account_request_ignores_foreign_next_urls(browser_client, jurisdiction):
    response = browser_client.post(
        "/tradingview/account-request/", {"environment": "demo", "next": "https://evil.example/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/tradingview/"


def test_suspended_trader_cannot_link(adapter, tv_client, browser_client, trader, accounts):
    trader_suspend(trader=trader, reason="test")
    response = browser_client.get("/tradingview/oauth/authorize", authorize_params(tv_client))
    # A suspended trader's session ends; signing in again is refused by the foundation's backend.
    assert response.status_code == 302
    assert response["Location"].startswith("/account/login/")
    assert not Grant.objects.exists()
    assert adapter.sim.calls == []


def test_management_command_adds_a_client_and_prints_the_secret_once(db):
    out = StringIO()
    call_command(
        "tradingview_client",
        "add",
        "--name",
        "TV staging",
        "--redirect-uri",
        REDIRECT_URI,
        "--redirect-uri",
        "https://tv.example/other",
        stdout=out,
    )
    text = out.getvalue()
    client_id = re.search(r"client_id: (\S+)", text).group(1)
    secret = re.search(r"client_secret: (\S+)", text).group(1)
    client = OAuthClient.objects.get(client_id=client_id)
    assert secret not in client.client_secret_hash
    assert client.check_secret(secret)
    assert not client.check_secret(secret + "x")
    assert sorted(client.redirect_uris.values_list("uri", flat=True)) == sorted(
        [REDIRECT_URI, "https://tv.example/other"]
    )

    listing = StringIO()
    call_command("tradingview_client", "list", stdout=listing)
    assert client_id in listing.getvalue()
    assert secret not in listing.getvalue()


def test_admin_creates_a_client_and_shows_the_secret_once(db):
    staff = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123")
    c = Client()
    c.force_login(staff)
    response = c.post(
        "/admin/tradingview/oauthclient/add/",
        {
            "name": "TV production",
            "environment": "prod",
            "is_active": "on",
            "redirect_uris-TOTAL_FORMS": "1",
            "redirect_uris-INITIAL_FORMS": "0",
            "redirect_uris-MIN_NUM_FORMS": "1",
            "redirect_uris-MAX_NUM_FORMS": "1000",
            "redirect_uris-0-uri": REDIRECT_URI,
        },
        follow=True,
    )
    assert response.status_code == 200
    client = OAuthClient.objects.get()
    secret = response.context["shown"][0]["secret"]
    assert secret.encode() in response.content
    assert client.check_secret(secret)
    assert not client.check_secret(secret + "x")
    change = c.get(f"/admin/tradingview/oauthclient/{client.pk}/change/")
    assert secret.encode() not in change.content


def _admin_add_client(c: Client, *uris: str):
    data = {
        "name": "TV production",
        "environment": "prod",
        "is_active": "on",
        "redirect_uris-TOTAL_FORMS": str(len(uris)),
        "redirect_uris-INITIAL_FORMS": "0",
        "redirect_uris-MIN_NUM_FORMS": "1",
        "redirect_uris-MAX_NUM_FORMS": "1000",
    }
    data.update({f"redirect_uris-{i}-uri": uri for i, uri in enumerate(uris)})
    return c.post("/admin/tradingview/oauthclient/add/", data, follow=True)


def test_admin_registers_a_client_like_the_command_one_audit_record_and_its_uris(db):
    staff = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123")
    c = Client()
    c.force_login(staff)
    response = _admin_add_client(c, REDIRECT_URI, "https://tv.example/other")
    assert response.status_code == 200
    client = OAuthClient.objects.get()
    assert sorted(client.redirect_uris.values_list("uri", flat=True)) == sorted(
        [REDIRECT_URI, "https://tv.example/other"]
    )
    created = AuditEvent.objects.get(category="tradingview", action="client_created")
    assert created.actor == staff
    assert created.detail == {"client_id": client.client_id, "name": "TV production"}
    # The admin's own history of the addition points at the saved client.
    assert LogEntry.objects.get(object_id=str(client.pk)).action_flag == ADDITION


def test_admin_refuses_a_redirect_uri_the_command_refuses_and_registers_nothing(db):
    staff = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123")
    c = Client()
    c.force_login(staff)
    response = _admin_add_client(c, "https://tv.example/oauth/callback#fragment")
    assert response.status_code == 200
    assert "Not an absolute http(s) URI without a fragment" in response.content.decode()
    assert not OAuthClient.objects.exists()
    assert not AuditEvent.objects.filter(action="client_created").exists()
    with pytest.raises(CommandError, match="without a fragment"):
        call_command(
            "tradingview_client",
            "add",
            "--name",
            "x",
            "--redirect-uri",
            "https://tv.example/oauth/callback#fragment",
        )


def test_admin_grant_page_never_shows_the_token(adapter, tv_client, browser_client, accounts):
    from tests.helpers.tradingview import exchange, link

    token = exchange(tv_client, link(browser_client, tv_client, [accounts[0].pk])).json()["access_token"]
    staff = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123")
    c = Client()
    c.force_login(staff)
    grant = Grant.objects.get()
    page = c.get(f"/admin/tradingview/grant/{grant.pk}/change/")
    assert page.status_code == 200
    assert token.encode() not in page.content
    response = c.post(
        "/admin/tradingview/grant/", {"action": "revoke", "_selected_action": [grant.pk]}, follow=True
    )
    assert response.status_code == 200
    grant.refresh_from_db()
    assert grant.state in (Grant.State.REVOKING, Grant.State.REVOKED)


def test_sandbox_client_is_registered_idempotently(db, settings):
    first = tradingview_client_ensure_sandbox(sandbox_url="http://127.0.0.1:8001")
    second = tradingview_client_ensure_sandbox(sandbox_url="http://127.0.0.1:8001")
    assert first.pk == second.pk
    assert first.check_secret(SANDBOX_CLIENT_SECRET)
    assert list(first.redirect_uris.values_list("uri", flat=True)) == [
        "http://127.0.0.1:8001/tradingview-sim/callback"
    ]


def test_case_a_registration_keeps_the_authorization_request(
    tv_client, jurisdiction, django_capture_on_commit_callbacks
):
    browser = Client()
    start = browser.get("/tradingview/oauth/authorize", authorize_params(tv_client))
    login_page = browser.get(start["Location"])
    assert login_page.status_code == 200
    signup_href = re.search(rb'href="(/account/signup/\?next=[^"]+)"', login_page.content).group(1).decode()
    signup_page = browser.get(signup_href.replace("&amp;", "&"))
    next_value = re.search(rb'name="next" value="([^"]+)"', signup_page.content).group(1).decode()
    next_value = next_value.replace("&amp;", "&")
    assert next_value.startswith("/tradingview/oauth/authorize?")

    with django_capture_on_commit_callbacks(execute=True):
        sent = browser.post(
            "/account/signup/",
            {
                "username": "newtrader",
                "email": "newtrader@example.com",
                "password1": "Quite-Long-Passphrase-42",
                "password2": "Quite-Long-Passphrase-42",
                "next": next_value,
            },
        )
    assert sent["Location"] == "/account/signup/sent/"
    # The link in the confirmation mail, opened in the same browser, goes back to the authorization.
    link = re.search(r"http\S+(/account/signup/confirm/\S+)", mail.outbox[-1].body).group(1)
    done = browser.get(link)
    assert done.status_code == 302
    assert done["Location"] == next_value
    page = browser.get(done["Location"])
    # Case A: a new trader has no account yet and is offered the "cTrader/TradingView" account request.
    assert b'Ask for a "cTrader/TradingView" account' in page.content


def test_the_authorization_page_offers_only_the_authorization(
    tv_client, browser_client, accounts, settings
) -> None:
    """TradingView's rule: the authorization is the only action on the page; no unrelated links or forms.
    The broker's legal text stays; the language is TradingView's ``lang``."""
    settings.BRAND_SUPPORT_URL = "https://help.broker.example/"
    settings.BRAND_SUPPORT_EMAIL = "help@broker.example"
    settings.BRAND_LEGAL_FOOTER = "Broker Ltd is regulated."
    from branding.selectors import brand_forget

    brand_forget()
    html = browser_client.get("/tradingview/oauth/authorize", authorize_params(tv_client, lang="de")).content
    page = html.decode()
    assert re.findall(r"<form\b[^>]*>", page) == [
        '<form method="post" action="/tradingview/oauth/authorize?lang=de">'
    ]
    assert "language-switch" not in page
    assert "<nav" not in page  # no site navigation, not even an empty landmark
    assert "help.broker.example" not in page
    assert "help@broker.example" not in page
    assert "Broker Ltd is regulated." in page
    assert '<html lang="de">' in page
    # The sign-in page on the way to it offers only the sign-in the same way.
    browser_client.logout()
    login = browser_client.get("/tradingview/oauth/authorize", authorize_params(tv_client), follow=True)
    page = login.content.decode()
    assert len(re.findall(r"<form\b", page)) == 1
    assert "language-switch" not in page
    assert "help.broker.example" not in page
    assert "Broker Ltd is regulated." in page
