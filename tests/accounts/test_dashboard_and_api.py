from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Ctid
from tests.factories import CtidFactory, JurisdictionFactory, TradingAccountFactory


def test_dashboard_requires_sign_in(client, db):
    response = client.get(reverse("dashboard"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_dashboard_empty_state_without_ctid(trader_client):
    response = trader_client.get(reverse("dashboard"))
    assert response.status_code == 200
    assert "No cTrader ID connected yet" in response.content.decode()


def test_dashboard_empty_state_for_ctid_without_accounts(trader_client, trader):
    CtidFactory(trader=trader, user_id=7654321)
    html = trader_client.get(reverse("dashboard")).content.decode()
    assert "cTrader ID 7654321" in html
    assert "You did not share any trading account of this cTrader ID with us." in html


def test_dashboard_lists_ctids_and_accounts(trader_client, trader):
    eu = JurisdictionFactory(broker_name="SANDBOX-EU", display_name="Sandbox EU")
    ctid = CtidFactory(trader=trader, user_id=7001001)
    TradingAccountFactory(
        ctid=ctid, login=5100101, is_live=True, jurisdiction=eu, balance=Decimal("12500.50"), currency="EUR"
    )
    TradingAccountFactory(
        ctid=ctid,
        login=5100102,
        is_live=False,
        jurisdiction=None,
        broker_title="Unmapped Broker",
        balance=None,
        balance_updated_at=None,
        last_synced_at=None,
    )
    html = trader_client.get(reverse("dashboard")).content.decode()
    assert "Connected" in html
    assert "5100101" in html
    assert "Live" in html
    assert "Sandbox EU" in html
    assert "12,500.50 EUR" in html
    assert "5100102" in html
    assert "Demo" in html
    assert "Unmapped Broker" in html
    assert "Not known yet" in html
    assert "needs to be reconnected" not in html


def test_dashboard_needs_reconnect_banner(trader_client, trader):
    CtidFactory(
        trader=trader, user_id=7001002, state=Ctid.State.NEEDS_RECONNECT, state_reason="refresh refused"
    )
    CtidFactory(trader=trader, user_id=7001003, state=Ctid.State.DISCONNECTED)
    html = trader_client.get(reverse("dashboard")).content.decode()
    assert "Your cTrader ID 7001002 needs to be reconnected" in html
    assert 'role="alert"' in html
    assert "Needs to be reconnected" in html
    assert "Disconnected" in html
    assert "refresh refused" not in html  # staff detail, not for the trader


def test_dashboard_queries_do_not_grow_with_accounts(trader_client, trader):
    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert trader_client.get(reverse("dashboard")).status_code == 200
        return len(ctx.captured_queries)

    TradingAccountFactory(ctid=CtidFactory(trader=trader))
    count()  # the first request of a session records when it was last seen (clientarea/sessions.py)
    small = count()
    for _ in range(3):
        ctid = CtidFactory(trader=trader)
        TradingAccountFactory.create_batch(3, ctid=ctid)
    assert count() == small


def test_dashboard_shows_only_own_data(trader_client, other_trader):
    TradingAccountFactory(ctid=CtidFactory(trader=other_trader, user_id=8888888), login=7777777)
    html = trader_client.get(reverse("dashboard")).content.decode()
    assert "8888888" not in html
    assert "7777777" not in html


def test_staff_without_trader_profile_sees_a_dashboard(staff_client):
    response = staff_client.get(reverse("dashboard"))
    assert response.status_code == 200
    assert "Staff account" in response.content.decode()
    me = staff_client.get(reverse("api-me")).json()
    assert me["is_trader"] is False
    assert me["ctids"] == []


def test_api_me(trader_client, trader):
    CtidFactory(trader=trader, user_id=7001001, state=Ctid.State.NEEDS_RECONNECT)
    data = trader_client.get(reverse("api-me")).json()
    assert data["username"] == trader.user.username
    assert data["email"] == trader.user.email
    assert data["is_trader"] is True
    assert data["kyc_verified"] is False
    assert data["suspended"] is False
    assert [(c["user_id"], c["state"]) for c in data["ctids"]] == [(7001001, "needs_reconnect")]


def test_api_accounts_list_and_detail(trader_client, trader, other_trader):
    mine = TradingAccountFactory(ctid__trader=trader, is_live=True, balance=Decimal("10.5"), currency="EUR")
    TradingAccountFactory(ctid__trader=other_trader)
    data = trader_client.get(reverse("api-accounts")).json()
    assert data["count"] == 1
    row = data["results"][0]
    assert row["ctid_trader_account_id"] == mine.ctid_trader_account_id
    assert row["environment"] == "live"
    assert row["ctid"] == mine.ctid.user_id
    assert Decimal(row["balance"]) == Decimal("10.5")
    assert row["currency"] == "EUR"
    assert row["jurisdiction"]["broker_name"] == mine.jurisdiction.broker_name
    detail = trader_client.get(reverse("api-account-detail", args=[mine.ctid_trader_account_id]))
    assert detail.status_code == 200
    assert detail.json() == row


def test_api_requires_authentication(client, db):
    for name in ("api-me", "api-accounts"):
        assert client.get(reverse(name)).status_code == 403


def test_api_keeps_csrf_for_session_auth(trader, db):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(trader.user)
    assert client.get(reverse("api-accounts")).status_code == 200
    response = client.post(reverse("api-accounts"), {})
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


@pytest.mark.parametrize("url_name", ["account-detail", "api-account-detail"])
def test_another_traders_account_is_404(trader_client, other_trader, url_name):
    theirs = TradingAccountFactory(ctid__trader=other_trader)
    response = trader_client.get(reverse(url_name, args=[theirs.ctid_trader_account_id]))
    assert response.status_code == 404
    assert str(theirs.login) not in response.content.decode()


def _account_url_names(patterns=None, namespace=""):
    """Every named URL, in any app, whose route takes a ctid_trader_account_id."""
    from django.urls import URLPattern, URLResolver, get_resolver

    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _account_url_names(entry.url_patterns, inner)
        elif isinstance(entry, URLPattern) and entry.name and "ctid_trader_account_id" in str(entry.pattern):
            yield namespace + entry.name


def test_every_account_url_is_scoped(trader_client, trader, other_trader):
    """Every page and endpoint taking ctid_trader_account_id answers 404 for another trader's account."""
    mine = TradingAccountFactory(ctid__trader=trader)
    theirs = TradingAccountFactory(ctid__trader=other_trader)
    names = set(_account_url_names())
    assert {"account-detail", "api-account-detail"} <= names
    for name in sorted(names):
        url = reverse(name, kwargs={"ctid_trader_account_id": theirs.ctid_trader_account_id})
        assert trader_client.get(url).status_code == 404, name
        url = reverse(name, kwargs={"ctid_trader_account_id": mine.ctid_trader_account_id})
        assert trader_client.get(url).status_code != 404, name


def test_account_detail_page(trader_client, trader):
    account = TradingAccountFactory(ctid__trader=trader, login=5100201, is_tradingview=True)
    html = trader_client.get(
        reverse("account-detail", args=[account.ctid_trader_account_id])
    ).content.decode()
    assert "Demo account 5100201" in html
    assert "You can use this account on TradingView." in html


def test_openapi_schema_generates_without_warnings(staff_client, capsys):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
    assert staff_client.get(reverse("api-schema")).status_code == 200
    assert staff_client.get(reverse("api-docs")).status_code == 200
