"""The link's database work: it does not grow with the accounts, and the folded reads keep every check."""

from __future__ import annotations

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEvent, Ctid, TradingAccount
from tests.factories import CtidFactory
from tests.helpers.ctrader import make_trader
from tests.helpers.tradingview import (
    REDIRECT_URI,
    STATE,
    exchange,
    link,
    make_account,
    open_consent,
    redirect_query,
)
from tradingview.models import Grant, OAuthClient
from tradingview.services.clients import oauth_client_create


def _queries_per_step(adapter, tv_client, jurisdiction, jurisdiction_disabled, *, accounts: int, base: int):
    trader = make_trader(f"trader{accounts}", verified=True)
    ctid = CtidFactory(user_id=base, trader=trader)
    eligible = [
        make_account(ctid, base + i, live=i % 2 == 0, jurisdiction=jurisdiction, is_tradingview=i % 3 == 0)
        for i in range(1, accounts + 1)
    ]
    # Accounts the page explains instead of offering: gone, a broker entity not enabled, a cTID to reconnect.
    for i in range(accounts // 10):
        make_account(ctid, base + 10_000 + i, live=True, jurisdiction=jurisdiction, status="gone")
        make_account(ctid, base + 20_000 + i, live=False, jurisdiction=jurisdiction_disabled)
    broken = CtidFactory(user_id=base + 50_000, trader=trader, state=Ctid.State.NEEDS_RECONNECT)
    make_account(broken, base + 60_000, live=True, jurisdiction=jurisdiction)

    browser = Client()
    browser.force_login(trader.user)
    counts: dict[str, int] = {}
    with CaptureQueriesContext(connection) as ctx:
        nonce = open_consent(browser, tv_client)
    counts["authorize"] = len(ctx.captured_queries)
    with CaptureQueriesContext(connection) as ctx:
        response = browser.post(
            "/tradingview/oauth/authorize",
            {"consent": nonce, "action": "allow", "accounts": [a.pk for a in eligible]},
        )
    counts["consent"] = len(ctx.captured_queries)
    query = redirect_query(response)
    assert query["state"] == [STATE]
    with CaptureQueriesContext(connection) as ctx:
        token = exchange(tv_client, query["code"][0])
    counts["token"] = len(ctx.captured_queries)
    assert token.status_code == 200, token.content

    grant = Grant.objects.get(trader=trader)
    assert grant.state == Grant.State.ACTIVE
    assert grant.accounts.count() == accounts
    assert adapter.sim.calls[-1].json["ctidTraderAccountIds"] == sorted(
        a.ctid_trader_account_id for a in eligible
    )
    return counts


def test_queries_per_link_do_not_grow_with_accounts(adapter, tv_client, jurisdiction, jurisdiction_disabled):
    few = _queries_per_step(
        adapter, tv_client, jurisdiction, jurisdiction_disabled, accounts=10, base=700_000_000
    )
    many = _queries_per_step(
        adapter, tv_client, jurisdiction, jurisdiction_disabled, accounts=200, base=800_000_000
    )
    assert TradingAccount.objects.count() == 10 + 2 + 1 + 200 + 40 + 1
    assert few == many


def test_exchange_checks_the_client_before_the_code(adapter, tv_client, browser_client, accounts):
    code = link(browser_client, tv_client, [accounts[0].pk])
    other, other_secret = oauth_client_create(name="Other TradingView", redirect_uris=[REDIRECT_URI])

    # A wrong secret with a valid code: invalid_client, recorded, and the code stays usable.
    wrong = exchange(tv_client, code, client_secret="not-the-secret")
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    assert AuditEvent.objects.filter(
        action="client_auth", outcome="invalid_client", detail__client_id=tv_client.client.client_id
    ).exists()
    # An unknown client, and a missing code with a bad secret, are invalid_client too.
    assert exchange(tv_client, code, client_id="tv-nobody").json()["error"] == "invalid_client"
    assert exchange(tv_client, "", client_secret="not-the-secret").json()["error"] == "invalid_client"
    # Another (authenticated) client presenting this code: the code is not valid for it.
    stolen = exchange(tv_client, code, client_id=other.client_id, client_secret=other_secret)
    assert (stolen.status_code, stolen.json()["error"]) == (400, "invalid_grant")
    # A deactivated client cannot exchange its own code.
    OAuthClient.objects.filter(pk=tv_client.client.pk).update(is_active=False)
    assert exchange(tv_client, code).json()["error"] == "invalid_client"
    OAuthClient.objects.filter(pk=tv_client.client.pk).update(is_active=True)

    assert exchange(tv_client, code).status_code == 200
    assert Grant.objects.get().state == Grant.State.ACTIVE
