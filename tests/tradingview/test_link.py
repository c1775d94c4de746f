"""The code flow end to end against a real adapter simulator on loopback."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import Client

from accounts.models import AuditEvent
from tests.helpers.tradingview import (
    BROKER_BEARER,
    REDIRECT_URI,
    STATE,
    authorize_params,
    exchange,
    link,
    open_consent,
    redirect_query,
    token_post,
)
from tradingview.models import AuthorizationCode, Grant, OAuthClient


def test_consent_calls_the_adapter_exactly_and_hands_the_token_over(
    adapter, tv_client, browser_client, accounts
):
    code = link(browser_client, tv_client, [a.pk for a in accounts])

    [call] = adapter.sim.calls
    assert call.method == "POST"
    assert call.path == "/adapter/generate/token"
    assert call.headers["content-type"] == "application/json"
    assert call.headers["accept"] == "application/json"
    assert call.headers["authorization"] == f"Bearer {BROKER_BEARER}"
    assert call.json == {
        "userId": 14601,
        "brokerNames": ["BESTBROKER"],
        "ctidTraderAccountIds": [137780091, 137792301],
        "isVerified": True,
    }
    assert type(call.json["userId"]) is int
    assert all(type(i) is int for i in call.json["ctidTraderAccountIds"])
    assert type(call.json["isVerified"]) is bool
    [issued] = adapter.sim.active_tokens()

    grant = Grant.objects.get()
    assert grant.state == Grant.State.ACTIVE
    assert grant.adapter_token == issued
    assert sorted(grant.accounts.values_list("ctid_trader_account_id", flat=True)) == [137780091, 137792301]
    assert (grant.adapter_token_expires_at - grant.adapter_token_issued_at).days == 30
    with connection.cursor() as cursor:
        cursor.execute("SELECT adapter_token FROM tradingview_grant")
        stored = cursor.fetchone()[0]
    assert issued not in stored  # encrypted at rest
    assert AuthorizationCode.objects.get().code_hash != code  # only the hash is kept

    response = exchange(tv_client, code)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["access_token"] == issued
    assert body["expires_in"] == 1800
    assert isinstance(body["refresh_token"], str)
    assert len(body["refresh_token"]) > 40
    assert AuditEvent.objects.filter(category="tradingview", action="grant_created", outcome="ok").exists()


def test_state_comes_back_unchanged_on_errors_too(tv_client, browser_client):
    response = browser_client.get(
        "/tradingview/oauth/authorize", authorize_params(tv_client, response_type="token")
    )
    query = redirect_query(response)
    assert query["error"] == ["unsupported_response_type"]
    assert query["state"] == [STATE]


@pytest.mark.parametrize(
    "overrides",
    [
        {"client_id": "tv-unknown"},
        {"redirect_uri": "https://evil.example/callback"},
        {"redirect_uri": REDIRECT_URI + "/"},  # matched exactly, not by prefix
        {"redirect_uri": None},
        {"client_id": None},
    ],
)
def test_unknown_client_or_unregistered_redirect_shows_an_error_and_never_redirects(
    tv_client, browser_client, overrides
):
    response = browser_client.get("/tradingview/oauth/authorize", authorize_params(tv_client, **overrides))
    assert response.status_code == 400
    assert "Location" not in response
    assert b"TradingView could not be linked" in response.content


def test_a_trader_with_accounts_gets_the_same_errors_for_an_unregistered_redirect_or_client(
    tv_client, browser_client, accounts
):
    # The page reads the client together with the trader's accounts: the checks are the same.
    wrong = browser_client.get(
        "/tradingview/oauth/authorize", authorize_params(tv_client, redirect_uri=REDIRECT_URI + "/")
    )
    assert wrong.status_code == 400
    assert b"not registered" in wrong.content
    OAuthClient.objects.filter(pk=tv_client.client.pk).update(is_active=False)
    gone = browser_client.get("/tradingview/oauth/authorize", authorize_params(tv_client))
    assert gone.status_code == 400
    assert b"not known to us" in gone.content
    assert "Location" not in gone
    OAuthClient.objects.filter(pk=tv_client.client.pk).update(is_active=True)
    page = browser_client.get("/tradingview/oauth/authorize", authorize_params(tv_client))
    assert page.status_code == 200
    assert tv_client.client.name.encode() in page.content
    for account in accounts:
        assert f'value="{account.pk}"'.encode() in page.content


def test_anonymous_trader_is_sent_to_sign_in_and_keeps_the_request(tv_client):
    params = authorize_params(tv_client)
    response = Client().get("/tradingview/oauth/authorize", params)
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith("/account/login/?next=")
    from urllib.parse import parse_qs, urlsplit

    next_url = parse_qs(urlsplit(location).query)["next"][0]
    assert parse_qs(urlsplit(next_url).query) == {k: [v] for k, v in params.items()}


def _consent_post(client, nonce, account_ids):
    return client.post(
        "/tradingview/oauth/authorize", {"consent": nonce, "action": "allow", "accounts": account_ids}
    )


@pytest.mark.parametrize(
    ("mode", "status", "outcome", "text"),
    [
        ("error", 502, "s_error", b"did not accept the link"),
        ("401", 502, "s_error", b"did not accept the link"),
        ("500", 503, "http_5xx", b"could not be reached"),
        ("malformed", 502, "malformed", b"did not accept the link"),
        ("timeout", 503, "timeout", b"could not be reached"),
    ],
)
def test_adapter_failures_show_a_message_with_retry_and_create_nothing(
    adapter, tv_client, browser_client, accounts, mode, status, outcome, text
):
    nonce = open_consent(browser_client, tv_client)
    adapter.sim.mode = mode
    response = _consent_post(browser_client, nonce, [a.pk for a in accounts])
    assert response.status_code == status
    assert text in response.content
    assert b"Try again" in response.content
    assert len(adapter.sim.calls_to("/generate/token")) == 1
    assert not Grant.objects.exists()
    assert not AuthorizationCode.objects.exists()
    event = AuditEvent.objects.get(category="tradingview", action="generate_token")
    assert event.outcome == outcome

    # The trader retries the same form once the adapter is back.
    adapter.sim.mode = ""
    retry = _consent_post(browser_client, nonce, [a.pk for a in accounts])
    assert redirect_query(retry)["state"] == [STATE]
    assert Grant.objects.get().state == Grant.State.ACTIVE


def test_adapter_refusing_connections(settings, closed_port_url, tv_client, browser_client, accounts):
    settings.TRADINGVIEW_ADAPTER_URL = closed_port_url
    settings.HTTP_CONNECT_RETRIES = 0
    nonce = open_consent(browser_client, tv_client)
    response = _consent_post(browser_client, nonce, [accounts[0].pk])
    assert response.status_code == 503
    assert b"could not be reached" in response.content
    assert not Grant.objects.exists()
    assert not AuthorizationCode.objects.exists()
    assert AuditEvent.objects.get(category="tradingview", action="generate_token").outcome == "unreachable"


def test_another_traders_account_is_refused_without_calling_the_adapter(
    adapter, tv_client, browser_client, accounts, other_trader_account
):
    nonce = open_consent(browser_client, tv_client)
    response = _consent_post(browser_client, nonce, [accounts[0].pk, other_trader_account.pk])
    assert response.status_code == 400
    assert b"not yours" in response.content
    assert adapter.sim.calls == []
    assert not Grant.objects.exists()
    assert AuditEvent.objects.get(category="tradingview", action="consent").outcome == "refused"


def test_ineligible_account_in_the_post_is_refused_without_calling_the_adapter(
    adapter, tv_client, browser_client, accounts, jurisdiction_disabled
):
    from tests.helpers.tradingview import make_account

    blocked = make_account(accounts[0].ctid, 42424242, live=True, jurisdiction=jurisdiction_disabled)
    nonce = open_consent(browser_client, tv_client)
    response = _consent_post(browser_client, nonce, [blocked.pk])
    assert response.status_code == 400
    assert adapter.sim.calls == []


def test_consent_post_needs_the_csrf_token(adapter, tv_client, trader, accounts):
    client = Client(enforce_csrf_checks=True)
    client.force_login(trader.user)
    nonce = open_consent(client, tv_client)
    response = _consent_post(client, nonce, [accounts[0].pk])
    assert response.status_code == 403
    assert adapter.sim.calls == []
    assert not Grant.objects.exists()


def test_token_endpoint_takes_no_csrf_token_and_basic_auth(adapter, tv_client, browser_client, accounts):
    import base64

    code = link(browser_client, tv_client, [accounts[0].pk])
    basic = base64.b64encode(f"{tv_client.client.client_id}:{tv_client.secret}".encode()).decode()
    response = Client(enforce_csrf_checks=True).post(
        "/tradingview/oauth/token",
        f"grant_type=authorization_code&code={code}&redirect_uri={REDIRECT_URI}",
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"Basic {basic}",
    )
    assert response.status_code == 200, response.content
    assert response.json()["access_token"] == adapter.sim.active_tokens()[0]


def test_double_submitted_consent_creates_one_grant(adapter, tv_client, browser_client, accounts):
    nonce = open_consent(browser_client, tv_client)
    first = redirect_query(_consent_post(browser_client, nonce, [a.pk for a in accounts]))
    second = redirect_query(_consent_post(browser_client, nonce, [a.pk for a in accounts]))
    assert Grant.objects.count() == 1
    assert len(adapter.sim.calls_to("/generate/token")) == 1
    # Only the newest redirect reaches TradingView; it works, the older code does not.
    assert exchange(tv_client, first["code"][0]).json()["error"] == "invalid_grant"
    assert exchange(tv_client, second["code"][0]).status_code == 200
    assert Grant.objects.get().state == Grant.State.ACTIVE


def test_code_replay_is_refused_and_revokes_the_grant(
    adapter, tv_client, browser_client, accounts, django_capture_on_commit_callbacks
):
    code = link(browser_client, tv_client, [accounts[0].pk])
    token = exchange(tv_client, code).json()["access_token"]
    with django_capture_on_commit_callbacks(execute=True):
        replay = exchange(tv_client, code)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    grant = Grant.objects.get()
    assert grant.state == Grant.State.REVOKED
    [logout] = adapter.sim.calls_to("/logout")
    assert logout.headers["authorization"] == f"Bearer {token}"
    assert logout.body == b""
    assert adapter.sim.is_revoked(token)


def test_expired_code_is_refused(adapter, tv_client, browser_client, accounts):
    from datetime import timedelta

    from django.utils import timezone

    code = link(browser_client, tv_client, [accounts[0].pk])
    AuthorizationCode.objects.update(
        created_at=timezone.now() - timedelta(seconds=61), expires_at=timezone.now() - timedelta(seconds=1)
    )
    response = exchange(tv_client, code)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "The code has expired."}
    assert Grant.objects.get().state == Grant.State.ACTIVE  # an expired code is not a replay


def test_code_lifetime_is_at_most_sixty_seconds(adapter, tv_client, browser_client, accounts):
    link(browser_client, tv_client, [accounts[0].pk])
    row = AuthorizationCode.objects.get()
    assert (row.expires_at - row.created_at).total_seconds() <= 60


def test_wrong_client_secret_is_invalid_client(adapter, tv_client, browser_client, accounts):
    code = link(browser_client, tv_client, [accounts[0].pk])
    response = exchange(tv_client, code, client_secret="not-the-secret")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response["Cache-Control"] == "no-store"
    assert "WWW-Authenticate" in response
    # The code survives a failed client authentication.
    assert exchange(tv_client, code).status_code == 200


def test_redirect_uri_must_match_the_authorization_request(adapter, tv_client, browser_client, accounts):
    code = link(browser_client, tv_client, [accounts[0].pk])
    response = exchange(tv_client, code, redirect_uri="https://tv.example/other")
    assert response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({}, "invalid_request"),
    ],
)
def test_token_endpoint_errors_use_rfc6749_names(tv_client, data, error):
    response = token_post(
        {**data, "client_id": tv_client.client.client_id, "client_secret": tv_client.secret}
    )
    assert response.status_code == 400
    assert response.json()["error"] == error


def test_token_endpoint_refuses_json_bodies(tv_client):
    response = Client().post(
        "/tradingview/oauth/token",
        json.dumps({"grant_type": "authorization_code"}),
        content_type="application/json",
    )
    assert response.json()["error"] == "invalid_request"


def test_expires_in_never_exceeds_the_adapter_tokens_remaining_life(
    settings, adapter, tv_client, browser_client, accounts
):
    from datetime import timedelta

    from django.utils import timezone

    settings.TRADINGVIEW_TOKEN_EXPIRES_IN = 10_000_000
    code = link(browser_client, tv_client, [accounts[0].pk])
    Grant.objects.update(adapter_token_expires_at=timezone.now() + timedelta(seconds=100))
    expires_in = exchange(tv_client, code).json()["expires_in"]
    assert 0 < expires_in <= 100


def test_expires_in_is_capped_at_tradingviews_ceiling(settings, adapter, tv_client, browser_client, accounts):
    settings.TRADINGVIEW_TOKEN_EXPIRES_IN = 10_000_000
    code = link(browser_client, tv_client, [accounts[0].pk])
    assert exchange(tv_client, code).json()["expires_in"] == 2_147_483


def test_the_consent_form_is_compressed_only_when_it_offers_many_accounts(
    adapter, tv_client, browser_client, ctid, accounts, jurisdiction
):
    from django.core import signing

    from tests.helpers.tradingview import make_account
    from tradingview.views import CONSENT_COMPRESS_FROM_ACCOUNTS, CONSENT_SALT

    # Two accounts: a short form, signed as it is (Django marks a compressed payload with a leading ".").
    few = open_consent(browser_client, tv_client)
    assert not few.startswith(".")
    assert len(signing.loads(few, salt=CONSENT_SALT)["o"]) == 2
    # Many accounts: compressed, several times shorter than the same form signed as it is.
    for i in range(CONSENT_COMPRESS_FROM_ACCOUNTS):
        make_account(ctid, 137_900_000 + i, live=False, jurisdiction=jurisdiction)
    many = open_consent(browser_client, tv_client)
    assert many.startswith(".")
    offered = signing.loads(many, salt=CONSENT_SALT)
    assert len(offered["o"]) == CONSENT_COMPRESS_FROM_ACCOUNTS + 2
    assert len(many) * 2 < len(signing.dumps(offered, salt=CONSENT_SALT))
    # Both forms link.
    for nonce in (few, many):
        response = browser_client.post(
            "/tradingview/oauth/authorize",
            {"consent": nonce, "action": "allow", "accounts": [accounts[0].pk]},
        )
        assert response.status_code == 302
