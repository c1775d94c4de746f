"""The consent's double-submit claim: a row of an unlogged table, taken by the consent's re-check in the same
statement, released when nothing was linked, left to expire otherwise and swept once it has."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import TradingAccount
from tests.helpers.tradingview import open_consent, redirect_query
from tradingview.models import ConsentClaim, Grant
from tradingview.services import consent, statements
from tradingview.services.upkeep import grants_upkeep

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["statement", "orm"])
def claim_path(request, monkeypatch) -> str:
    # PostgreSQL claims with one prepared statement; other databases through the ORM.
    if request.param == "orm":
        monkeypatch.setattr(statements, "available", lambda: False)
    return str(request.param)


def test_a_form_is_claimed_once_until_its_claim_expires(claim_path):
    assert consent._claim_take("form-a") is True
    assert consent._claim_take("form-a") is False
    assert consent._claim_take("form-b") is True
    # A claim whose submission died is taken over once it has expired.
    ConsentClaim.objects.filter(key="form-a").update(expires_at=timezone.now() - timedelta(seconds=1))
    assert consent._claim_take("form-a") is True
    assert ConsentClaim.objects.get(key="form-a").expires_at > timezone.now()
    assert ConsentClaim.objects.count() == 2


def test_a_form_whose_grant_is_stored_is_not_claimed_again(claim_path, trader, ctid, tv_client):
    Grant.objects.create(client=tv_client.client, trader=trader, ctid=ctid, consent_key="form-a")
    assert consent._claim_take("form-a") is False
    assert not ConsentClaim.objects.exists()


def test_the_claims_are_unlogged_on_postgresql():
    # A claim lives seconds: its writes skip the write-ahead log, and a crash that empties the table costs
    # at most a surplus adapter token, which the grant's unique consent key turns into a revocation.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relpersistence FROM pg_class WHERE relname = %s", [ConsentClaim._meta.db_table]
        )
        assert cursor.fetchone() == ("u",)


def test_the_sweep_deletes_the_expired_claims_only():
    now = timezone.now()
    ConsentClaim.objects.create(key="expired", expires_at=now - timedelta(seconds=1))
    ConsentClaim.objects.create(key="live", expires_at=now + timedelta(seconds=30))
    assert grants_upkeep(now=now).claims_deleted == 1
    assert list(ConsentClaim.objects.values_list("key", flat=True)) == ["live"]


def test_the_consent_claims_in_its_recheck_and_leaves_the_claim_to_expire(
    adapter, tv_client, browser_client, accounts
):
    nonce = open_consent(browser_client, tv_client)
    first = browser_client.post(
        "/tradingview/oauth/authorize", {"consent": nonce, "action": "allow", "accounts": [accounts[0].pk]}
    )
    assert first.status_code == 302
    [claim] = ConsentClaim.objects.all()
    assert claim.key == Grant.objects.get().consent_key
    assert claim.expires_at > timezone.now()


def test_a_refused_consent_releases_its_claim_so_the_same_form_links_at_once(
    adapter, tv_client, browser_client, accounts
):
    nonce = open_consent(browser_client, tv_client)
    TradingAccount.objects.filter(pk=accounts[1].pk).update(status="gone")
    refused = browser_client.post(
        "/tradingview/oauth/authorize",
        {"consent": nonce, "action": "allow", "accounts": [a.pk for a in accounts]},
    )
    assert refused.status_code == 400
    assert not ConsentClaim.objects.exists()
    # The trader unticks the account that is gone and confirms the same form again.
    linked = browser_client.post(
        "/tradingview/oauth/authorize", {"consent": nonce, "action": "allow", "accounts": [accounts[0].pk]}
    )
    assert linked.status_code == 302
    assert redirect_query(linked)["code"]
    assert len(adapter.sim.calls_to("/generate/token")) == 1


def test_a_failed_adapter_call_releases_the_claim(adapter, tv_client, browser_client, accounts):
    adapter.sim.mode = "error"
    nonce = open_consent(browser_client, tv_client)
    failed = browser_client.post(
        "/tradingview/oauth/authorize", {"consent": nonce, "action": "allow", "accounts": [accounts[0].pk]}
    )
    assert failed.status_code in (502, 503)
    assert not ConsentClaim.objects.exists()
    assert not Grant.objects.exists()
