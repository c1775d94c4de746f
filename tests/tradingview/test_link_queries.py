"""The link's database work does not depend on how many accounts the trader has or chooses."""

from __future__ import annotations

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import Ctid, TradingAccount
from tests.factories import CtidFactory
from tradingview.models import Grant

from .conftest import STATE, exchange, make_account, make_trader, open_consent, redirect_query


def _queries_per_step(adapter, tv_client, jurisdiction, jurisdiction_disabled, *, accounts: int, base: int):
    trader = make_trader(f"trader{accounts}")
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
