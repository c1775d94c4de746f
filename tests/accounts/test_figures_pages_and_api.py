"""What the trader sees: the dashboard, the account page and the API carry the figures of their own accounts
only, with their time, stale and margin-call flags; the history endpoint's resolution and bounds."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import AccountFigures, AccountSnapshot, Jurisdiction, Trader, TradingAccount
from tests.factories import CtidFactory, JurisdictionFactory, TradingAccountFactory

pytestmark = pytest.mark.django_db


def give_figures(
    account: TradingAccount,
    *,
    balance: str = "1000.00",
    equity: str = "1100.00",
    used: str = "200.00",
    age: timedelta = timedelta(seconds=5),
    currency: str = "USD",
) -> AccountFigures:
    b, e, u = Decimal(balance), Decimal(equity), Decimal(used)
    return AccountFigures.objects.create(
        account=account,
        source=AccountFigures.Source.WEBSERVICES,
        currency=currency,
        money_digits=2,
        balance=b,
        equity=e,
        used_margin=u,
        free_margin=e - u,
        unrealized_pnl=e - b,
        margin_level=(e * 100 / u).quantize(Decimal("0.0001")) if u else None,
        read_at=timezone.now() - age,
    )


def accounts_of(trader: Trader, count: int, **kwargs: object) -> list[TradingAccount]:
    ctid = CtidFactory(trader=trader)
    return [TradingAccountFactory(ctid=ctid, **kwargs) for _ in range(count)]


def test_dashboard_shows_each_figure_with_its_time_totals_per_currency_and_flags(
    trader, trader_client, settings
):
    settings.FIGURES_STALE_SECONDS = 300
    settings.FIGURES_MARGIN_CALL_LEVEL = Decimal("100")
    strict = JurisdictionFactory(broker_name="STRICT", margin_call_level=Decimal("600"))
    fresh, old = accounts_of(trader, 2)
    flagged = accounts_of(trader, 1, jurisdiction=strict)[0]
    give_figures(fresh, balance="1234.50", equity="1300.25", used="100.00")
    give_figures(old, balance="10.00", equity="10.00", used="0", age=timedelta(hours=2))
    give_figures(flagged, balance="100.00", equity="1000.00", used="200.00", currency="EUR")

    page = trader_client.get("/").content.decode()

    for text in ("1,234.50", "1,300.25", "100.00", "1,200.25", "1,300.25", "65.75"):
        assert text in page
    assert "No margin used" in page  # the account without margin has no level
    assert "Out of date" in page  # the two-hour-old figures
    assert page.count('class="badge warn">Out of date') == 1
    # Totals per currency: USD = 1234.50 + 10.00, equity 1300.25 + 10.00.
    assert "1,244.50" in page
    assert "1,310.25" in page
    # Margin level 500 % is over the default 100 % but under the strict jurisdiction's 600 %.
    assert page.count('class="badge danger">Margin call') == 1
    assert "margin level 500.00 % (margin call under 600.00 %)" in page
    assert re.search(r"<time datetime=\"[^\"]+\">", page)


def test_no_figure_of_another_traders_account_in_any_page_or_api(trader, other_trader, trader_client):
    mine = accounts_of(trader, 1)[0]
    theirs = accounts_of(other_trader, 1)[0]
    give_figures(mine, equity="1111.11")
    give_figures(theirs, equity="9876.54", balance="9000.00", used="321.00")
    AccountSnapshot.objects.create(
        account=theirs, at=timezone.now(), balance=Decimal("9000"), equity=Decimal("9876.54"), used_margin=0
    )
    pages = [
        trader_client.get("/").content.decode(),
        trader_client.get(f"/accounts/{mine.ctid_trader_account_id}/").content.decode(),
        trader_client.get("/api/v1/accounts/").content.decode(),
        trader_client.get(f"/api/v1/accounts/{mine.ctid_trader_account_id}/history/").content.decode(),
    ]
    for page in pages:
        assert "9876" not in page
        assert "9,876" not in page
        assert "321.00" not in page
    assert "1111.11" in pages[2]
    theirs_id = theirs.ctid_trader_account_id
    for url in (
        f"/accounts/{theirs_id}/",
        f"/api/v1/accounts/{theirs_id}/",
        f"/api/v1/accounts/{theirs_id}/history/",
    ):
        assert trader_client.get(url).status_code == 404


def test_api_carries_the_figures_with_time_and_stale_flag(trader, trader_client, settings):
    settings.FIGURES_STALE_SECONDS = 60
    fresh, old, none = accounts_of(trader, 3)
    give_figures(fresh, balance="1000.00", equity="1050.50", used="210.10")
    give_figures(old, age=timedelta(minutes=5))

    rows = {r["ctid_trader_account_id"]: r for r in trader_client.get("/api/v1/accounts/").json()["results"]}

    figures = rows[fresh.ctid_trader_account_id]["figures"]
    assert figures["balance"] == "1000.0000000000"
    assert figures["equity"] == "1050.5000000000"
    assert figures["used_margin"] == "210.1000000000"
    assert figures["free_margin"] == "840.4000000000"
    assert figures["unrealized_pnl"] == "50.5000000000"
    assert figures["margin_level"] == "500.0000"
    assert figures["stale"] is False
    assert figures["margin_call"] is False
    assert figures["currency"] == "USD"
    assert figures["read_at"]
    assert rows[old.ctid_trader_account_id]["figures"]["stale"] is True
    assert rows[none.ctid_trader_account_id]["figures"] is None
    detail = trader_client.get(f"/api/v1/accounts/{fresh.ctid_trader_account_id}/").json()
    assert detail["figures"] == figures


def test_api_writes_zero_figures_as_plain_decimals(trader, trader_client):
    """A zero read back from PostgreSQL is Decimal("0E-10"); the API writes it as the schema's decimal string."""
    idle, _other = accounts_of(trader, 2)
    give_figures(idle, balance="0", equity="0", used="0")

    for url in (
        "/api/v1/accounts/",
        "/api/v1/accounts/?page_size=200",
        f"/api/v1/accounts/{idle.ctid_trader_account_id}/",
    ):
        body = trader_client.get(url).json()
        rows = body.get("results", [body])
        figures = next(r for r in rows if r["ctid_trader_account_id"] == idle.ctid_trader_account_id)[
            "figures"
        ]
        for name in ("balance", "equity", "used_margin", "free_margin", "unrealized_pnl"):
            assert figures[name] == "0.0000000000", (url, name, figures[name])


def _snapshots(account: TradingAccount, start, count: int, step: timedelta) -> None:
    AccountSnapshot.objects.bulk_create(
        AccountSnapshot(
            account=account,
            at=start + step * i,
            balance=Decimal(1000),
            equity=Decimal(1000 + i),
            used_margin=Decimal(0),
        )
        for i in range(count)
    )


def test_history_endpoint_resolution_buckets_and_bounds(trader, trader_client):
    account = accounts_of(trader, 1)[0]
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
    _snapshots(account, start, 6 * 60, timedelta(minutes=1))  # one point a minute for six hours
    url = f"/api/v1/accounts/{account.ctid_trader_account_id}/history/"
    window = {
        "from": (start + timedelta(hours=1)).isoformat(),
        "to": (start + timedelta(hours=4)).isoformat(),
    }

    hourly = trader_client.get(url, {**window, "resolution": "hour"}).json()
    minutely = trader_client.get(url, {**window, "resolution": "minute"}).json()

    # The last point of each hour bucket within the bounds (the bound at 4:00 opens a fourth bucket).
    assert hourly["resolution"] == "hour"
    assert [p["equity"] for p in hourly["points"]] == [
        "1119.0000000000",
        "1179.0000000000",
        "1239.0000000000",
        "1240.0000000000",
    ]
    assert len(minutely["points"]) == 181
    assert minutely["points"][0]["at"] <= minutely["points"][-1]["at"]
    assert trader_client.get(url, window).json()["resolution"] == "minute"  # auto over three hours

    bad = [
        {"from": window["to"], "to": window["from"]},
        {"from": "yesterday"},
        {"resolution": "second"},
        {"from": (start - timedelta(days=30)).isoformat(), "resolution": "minute"},
        {"from": "2000-01-01T00:00:00Z"},
    ]
    for query in bad:
        response = trader_client.get(url, query)
        assert response.status_code == 400, query
        assert response.json()


def test_history_is_in_the_schema(trader_client, staff_client):
    schema = staff_client.get("/api/v1/schema/").content.decode()
    assert "/api/v1/accounts/{ctid_trader_account_id}/history/" in schema
    assert "resolution" in schema
    assert "margin_level" in schema


def test_account_page_draws_the_chart_with_a_table_and_no_inline_script_or_style(trader, trader_client):
    account = accounts_of(trader, 1)[0]
    give_figures(account)
    _snapshots(account, timezone.now() - timedelta(hours=3), 30, timedelta(minutes=5))

    for period in ("day", "week", "month", "year"):
        page = trader_client.get(
            f"/accounts/{account.ctid_trader_account_id}/?period={period}"
        ).content.decode()
        assert '<svg class="chart"' in page
        assert 'class="series-equity" points="' in page
        assert "<table" in page
        assert "1,029.00" in page
        assert "<script" not in page
        assert "style=" not in page
    empty = accounts_of(trader, 1)[0]
    page = trader_client.get(f"/accounts/{empty.ctid_trader_account_id}/").content.decode()
    assert "No history for this period yet." in page
    assert "not known yet" in page


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


@pytest.mark.parametrize("url", ["/", "/api/v1/accounts/"])
def test_queries_do_not_grow_with_the_number_of_accounts(trader, trader_client, url):
    for account in accounts_of(trader, 2):
        give_figures(account)
    _queries(trader_client, url)  # the first request of a session also records when it was last seen
    few = _queries(trader_client, url)
    for account in accounts_of(trader, 20, jurisdiction=Jurisdiction.objects.first()):
        give_figures(account)
    assert _queries(trader_client, url) == few
