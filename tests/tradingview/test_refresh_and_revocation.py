"""Refresh rotation with the delayed /logout, and revocation (trader, staff signals, replay)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import signals
from accounts.models import AuditEvent, Ctid, TradingAccount
from accounts.services.traders import trader_change_password, trader_suspend
from tests.helpers.tradingview import exchange, link, token_post
from tradingview import tasks
from tradingview.models import Grant
from tradingview.selectors import grants_due_for_logout
from tradingview.services.logout import grant_logout
from tradingview.services.refresh import token_refresh
from tradingview.services.tokens import OAuthError


def _linked(adapter, tv_client, browser_client, accounts) -> dict:
    code = link(browser_client, tv_client, [a.pk for a in accounts])
    body = exchange(tv_client, code).json()
    assert "access_token" in body
    return body


def _refresh(tv_client, refresh_token, *, with_client_id=True):
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_secret": tv_client.secret}
    if with_client_id:
        data["client_id"] = tv_client.client.client_id
    return token_post(data)


def test_refresh_mints_a_new_token_rotates_and_logs_out_the_old_one_after_the_grace(
    settings, adapter, tv_client, browser_client, accounts
):
    settings.TRADINGVIEW_REFRESH_GRACE_SECONDS = 300
    first = _linked(adapter, tv_client, browser_client, accounts)

    # TradingView sends only the secret with a refresh; the client is found from the refresh token.
    response = _refresh(tv_client, first["refresh_token"], with_client_id=False)
    assert response.status_code == 200, response.content
    second = response.json()
    assert second["token_type"] == "bearer"
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]

    generate_calls = adapter.sim.calls_to("/generate/token")
    assert len(generate_calls) == 2
    assert generate_calls[1].json == generate_calls[0].json  # same trader, same accounts

    old = Grant.objects.get(
        adapter_token_issued_at__lt=Grant.objects.latest("created_at").adapter_token_issued_at
    )
    new = Grant.objects.get(state=Grant.State.ACTIVE)
    assert old.state == Grant.State.REVOKING
    assert old.superseded_by_id == new.pk
    assert old.revoke_after > timezone.now() + timedelta(seconds=250)
    # During the grace period both adapter tokens work, so TradingView can switch over.
    assert set(adapter.sim.active_tokens()) == {first["access_token"], second["access_token"]}
    assert adapter.sim.calls_to("/logout") == []

    # The old refresh token is spent: a repeat (a lost response) gets the same answer, no new adapter token.
    repeat = _refresh(tv_client, first["refresh_token"]).json()
    assert (repeat["access_token"], repeat["refresh_token"]) == (
        second["access_token"],
        second["refresh_token"],
    )
    assert len(adapter.sim.calls_to("/generate/token")) == 2

    # Not yet due: nothing happens.
    assert grants_due_for_logout() == []
    assert grant_logout(grant_id=old.pk) == "not_due"
    # Once the grace period is over, the sweep logs the old token out.
    later = timezone.now() + timedelta(seconds=301)
    assert grants_due_for_logout(now=later) == [old.pk]
    assert grant_logout(grant_id=old.pk, now=later) == "revoked"
    [logout] = adapter.sim.calls_to("/logout")
    assert logout.method == "POST"
    assert logout.path == "/adapter/logout"
    assert logout.headers["authorization"] == f"Bearer {first['access_token']}"
    assert logout.body == b""
    assert adapter.sim.active_tokens() == [second["access_token"]]
    old.refresh_from_db()
    assert old.state == Grant.State.REVOKED

    # The new refresh token keeps working.
    assert _refresh(tv_client, second["refresh_token"]).status_code == 200


def test_token_refresh_is_one_service_call_that_authenticates_the_client_first(
    adapter, tv_client, browser_client, accounts
):
    first = _linked(adapter, tv_client, browser_client, accounts)
    # A wrong secret is invalid_client, even with a valid refresh token, and the token stays usable.
    with pytest.raises(OAuthError) as refused:
        token_refresh(client_id="", client_secret="wrong", refresh_token=first["refresh_token"])
    assert (refused.value.error, refused.value.status) == ("invalid_client", 401)
    # Without a client id, the client is the one the refresh token was issued to.
    result = token_refresh(client_id="", client_secret=tv_client.secret, refresh_token=first["refresh_token"])
    assert result.access_token != first["access_token"]
    assert result.refresh_token != first["refresh_token"]
    with pytest.raises(OAuthError) as missing:
        token_refresh(client_id=tv_client.client.client_id, client_secret=tv_client.secret, refresh_token="")
    assert missing.value.error == "invalid_request"


def test_refresh_schedules_the_logout_task_with_the_grace_countdown(
    settings, adapter, tv_client, browser_client, accounts, monkeypatch, django_capture_on_commit_callbacks
):
    settings.TRADINGVIEW_REFRESH_GRACE_SECONDS = 120
    settings.CELERY_TASK_ALWAYS_EAGER = False
    sent = []
    monkeypatch.setattr(
        tasks.grant_logout, "apply_async", lambda args, countdown: sent.append((args, countdown))
    )
    first = _linked(adapter, tv_client, browser_client, accounts)
    with django_capture_on_commit_callbacks(execute=True):
        assert _refresh(tv_client, first["refresh_token"]).status_code == 200
    old = Grant.objects.get(state=Grant.State.REVOKING)
    assert sent == [((old.pk,), 120)]


def test_refresh_drops_accounts_no_longer_eligible(adapter, tv_client, browser_client, accounts):
    first = _linked(adapter, tv_client, browser_client, accounts)
    TradingAccount.objects.filter(pk=accounts[1].pk).update(status=TradingAccount.Status.GONE)
    assert _refresh(tv_client, first["refresh_token"]).status_code == 200
    assert adapter.sim.calls_to("/generate/token")[-1].json["ctidTraderAccountIds"] == [137780091]


def test_refresh_when_nothing_is_eligible_any_more_revokes(
    adapter, tv_client, browser_client, accounts, django_capture_on_commit_callbacks
):
    first = _linked(adapter, tv_client, browser_client, accounts)
    Ctid.objects.update(state=Ctid.State.NEEDS_RECONNECT)
    with django_capture_on_commit_callbacks(execute=True):
        response = _refresh(tv_client, first["refresh_token"])
    assert response.json()["error"] == "invalid_grant"
    assert len(adapter.sim.calls_to("/generate/token")) == 1
    assert Grant.objects.get().state == Grant.State.REVOKED
    assert adapter.sim.is_revoked(first["access_token"])


def test_refresh_with_the_adapter_down_keeps_everything(adapter, tv_client, browser_client, accounts):
    first = _linked(adapter, tv_client, browser_client, accounts)
    adapter.sim.mode = "500"
    response = _refresh(tv_client, first["refresh_token"])
    # TradingView keeps the adapter token it has; the refresh token rotates.
    assert response.status_code == 200
    assert response.json()["access_token"] == first["access_token"]
    grant = Grant.objects.get(state=Grant.State.ACTIVE)
    assert grant.degraded
    assert adapter.sim.calls_to("/logout") == []
    adapter.sim.mode = ""
    # Nothing was lost: the new refresh token works once the adapter is back.
    assert _refresh(tv_client, response.json()["refresh_token"]).status_code == 200


def test_suspension_revokes_every_grant_through_the_task(
    adapter, tv_client, browser_client, trader, accounts, django_capture_on_commit_callbacks
):
    first = _linked(adapter, tv_client, browser_client, accounts)
    with django_capture_on_commit_callbacks(execute=True):
        trader_suspend(trader=trader, reason="fraud check")
    grant = Grant.objects.get()
    assert grant.state == Grant.State.REVOKED
    assert "fraud check" in grant.revoke_reason
    assert adapter.sim.is_revoked(first["access_token"])
    assert _refresh(tv_client, first["refresh_token"]).json()["error"] == "invalid_grant"
    assert AuditEvent.objects.filter(category="tradingview", action="trader_grants_revoke").exists()
    assert AuditEvent.objects.filter(category="tradingview", action="logout", outcome="ok").exists()


def test_revocation_waits_for_the_adapter_and_is_never_handed_out_meanwhile(
    adapter, tv_client, browser_client, trader, accounts, django_capture_on_commit_callbacks
):
    first = _linked(adapter, tv_client, browser_client, accounts)
    adapter.sim.mode = "500"
    with django_capture_on_commit_callbacks(execute=True):
        trader_change_password(user=trader.user, new_password="Another-Sturdy-Pass-9", via="test")
    grant = Grant.objects.get()
    assert grant.state == Grant.State.REVOKING
    assert grant.revoke_attempts == 1
    assert b"Disconnect" not in browser_client.get("/tradingview/").content
    assert _refresh(tv_client, first["refresh_token"]).json()["error"] == "invalid_grant"
    assert not adapter.sim.is_revoked(first["access_token"])

    adapter.sim.mode = ""
    assert tasks.grant_revocation_sweep() == 1
    grant.refresh_from_db()
    assert grant.state == Grant.State.REVOKED
    assert adapter.sim.is_revoked(first["access_token"])


def test_ctid_needs_reconnect_revokes_its_grants(
    adapter, tv_client, browser_client, ctid, accounts, django_capture_on_commit_callbacks
):
    first = _linked(adapter, tv_client, browser_client, accounts)
    with django_capture_on_commit_callbacks(execute=True):
        signals.ctid_needs_reconnect.send(sender=Ctid, ctid=ctid, reason="refresh token dead")
    assert Grant.objects.get().state == Grant.State.REVOKED
    assert adapter.sim.is_revoked(first["access_token"])


def test_trader_page_lists_active_grants_and_disconnect_logs_out(
    adapter, tv_client, browser_client, accounts
):
    first = _linked(adapter, tv_client, browser_client, accounts)
    page = browser_client.get("/tradingview/")
    assert page.status_code == 200
    content = page.content.decode()
    assert "TradingView production" in content
    assert "TV prod → broker prod" not in content  # the staff label of the client
    assert first["access_token"] not in content
    grant = Grant.objects.get()
    # The page asks first; asking changes nothing.
    assert f'href="/tradingview/grants/{grant.pk}/disconnect/"' in content
    confirm = browser_client.get(f"/tradingview/grants/{grant.pk}/disconnect/")
    assert confirm.status_code == 200
    assert b"Disconnect TradingView production?" in confirm.content
    grant.refresh_from_db()
    assert grant.state == Grant.State.ACTIVE
    response = browser_client.post(f"/tradingview/grants/{grant.pk}/disconnect/")
    assert response.status_code == 302
    grant.refresh_from_db()
    assert grant.state == Grant.State.REVOKED
    [logout] = adapter.sim.calls_to("/logout")
    assert logout.headers["authorization"] == f"Bearer {first['access_token']}"
    assert b"You have no TradingView session" in browser_client.get("/tradingview/").content
    assert not Grant.objects.filter(state=Grant.State.ACTIVE).exists()


def test_disconnecting_another_traders_grant_is_a_404(
    adapter, tv_client, browser_client, accounts, other_trader_account
):
    _linked(adapter, tv_client, browser_client, accounts)
    grant = Grant.objects.get()
    from django.test import Client

    other = Client()
    other.force_login(other_trader_account.ctid.trader.user)
    assert other.post(f"/tradingview/grants/{grant.pk}/disconnect/").status_code == 404
    assert Grant.objects.get().state == Grant.State.ACTIVE
    assert adapter.sim.calls_to("/logout") == []


def test_api_lists_grants_without_tokens(adapter, tv_client, browser_client, accounts):
    first = _linked(adapter, tv_client, browser_client, accounts)
    response = browser_client.get("/api/v1/tradingview/grants/")
    assert response.status_code == 200
    text = response.content.decode()
    assert first["access_token"] not in text
    [item] = response.json()["results"]
    assert {a["ctid_trader_account_id"] for a in item["accounts"]} == {137780091, 137792301}


def test_code_replay_after_a_refresh_revokes_the_refreshed_token_too(
    adapter, tv_client, browser_client, accounts, django_capture_on_commit_callbacks
):
    code = link(browser_client, tv_client, [accounts[0].pk])
    first = exchange(tv_client, code).json()
    second = _refresh(tv_client, first["refresh_token"]).json()
    with django_capture_on_commit_callbacks(execute=True):
        assert exchange(tv_client, code).json()["error"] == "invalid_grant"
    assert not Grant.objects.exclude(state=Grant.State.REVOKED).exists()
    assert adapter.sim.is_revoked(first["access_token"])
    assert adapter.sim.is_revoked(second["access_token"])


def test_a_pending_grant_left_by_a_dead_request_does_not_block_the_form(
    adapter, tv_client, browser_client, trader, ctid, accounts
):
    import re

    from tests.helpers.tradingview import authorize_params

    page = browser_client.get("/tradingview/oauth/authorize", authorize_params(tv_client))
    nonce = re.search(rb'name="consent" value="([^"]+)"', page.content).group(1).decode()
    from django.core import signing

    key = signing.loads(nonce, salt="tradingview.consent")["k"]
    stale = Grant.objects.create(client=tv_client.client, trader=trader, ctid=ctid, consent_key=key)
    Grant.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(seconds=600))
    response = browser_client.post(
        "/tradingview/oauth/authorize", {"consent": nonce, "action": "allow", "accounts": [accounts[0].pk]}
    )
    assert response.status_code == 302
    assert Grant.objects.get().state == Grant.State.ACTIVE
