"""The dashboard and the account list API for a trader with many accounts: the page prints the same figures,
dates, badges and escaping in English and German whatever way it is built, the account list gives the same
bytes as its serializer, one page holds up to 200 accounts, and both make the same number of statements for
20 accounts as for 200."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.renderers import JSONRenderer

from accounts.api import TradingAccountSerializer
from accounts.models import AccountFigures, Ctid, Jurisdiction, Trader, TradingAccount
from accounts.selectors import accounts_for_user
from tests.factories import CtidFactory, JurisdictionFactory, TradingAccountFactory

pytestmark = pytest.mark.django_db

# Fixed times, so the printed dates are known; "stale" is set so that FRESH is within it and OLD is not.
FRESH = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
OLD = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
STALE_SECONDS = 20 * 365 * 86400


def _figures(
    account: TradingAccount, balance: str, equity: str, used: str, read_at: datetime, currency: str = "USD"
) -> None:
    b, e, u = Decimal(balance), Decimal(equity), Decimal(used)
    AccountFigures.objects.create(
        account=account,
        source=AccountFigures.Source.WEBSERVICES,
        currency=currency,
        balance=b,
        equity=e,
        used_margin=u,
        free_margin=e - u,
        unrealized_pnl=e - b,
        margin_level=(e * 100 / u).quantize(Decimal("0.0001")) if u else None,
        read_at=read_at,
    )


@pytest.fixture
def many_kinds(trader: Trader, settings) -> Trader:
    """Accounts in four currencies, fresh and stale, over and under their margin-call level, active, gone and
    disabled, with and without figures, balance or broker, under a connected, a reconnect-needing and a
    disconnected cTID."""
    settings.FIGURES_STALE_SECONDS = STALE_SECONDS
    settings.FIGURES_MARGIN_CALL_LEVEL = Decimal("100")
    odd = JurisdictionFactory(broker_name="ODD", display_name="Broker <A> & Co")
    strict = JurisdictionFactory(
        broker_name="STRICT", display_name="Strict", margin_call_level=Decimal("600")
    )
    connected = CtidFactory(trader=trader, user_id=7700001, last_synced_at=FRESH)
    reconnect = CtidFactory(trader=trader, user_id=7700002, state=Ctid.State.NEEDS_RECONNECT)
    CtidFactory(trader=trader, user_id=7700003, state=Ctid.State.DISCONNECTED)

    def account(ctid: Ctid, login: int, **fields: object) -> TradingAccount:
        values: dict[str, object] = {
            "ctid": ctid,
            "ctid_trader_account_id": 77_000_000 + login,
            "login": login,
            "is_live": login % 2 == 0,
            "jurisdiction": odd,
            "broker_title": "Title <x>",
            "balance": Decimal("1234567.891"),
            "currency": "USD",
            "balance_updated_at": FRESH,
        }
        values.update(fields)
        return TradingAccountFactory(**values)

    _figures(account(connected, 880001), "1234.50", "1300.25", "100.00", FRESH)
    _figures(account(connected, 880002, currency="EUR"), "98765.4321", "98000.10", "0", OLD, "EUR")
    _figures(
        account(connected, 880003, jurisdiction=strict, is_tradingview=True),
        "1000000",
        "999000.5",
        "500000",
        FRESH,
        "JPY",
    )
    _figures(account(connected, 880004, status=TradingAccount.Status.GONE), "5", "4", "1", OLD)
    _figures(
        account(connected, 880005, status=TradingAccount.Status.DISABLED, jurisdiction=None),
        "-3.5",
        "-10.25",
        "2.00",
        FRESH,
        "EUR",
    )
    account(connected, 880006, jurisdiction=None, broker_title="")
    account(connected, 880007, jurisdiction=None, balance=None, balance_updated_at=None)
    account(reconnect, 880008, balance=Decimal("0.005"))
    _figures(account(reconnect, 880009, currency="GBP"), "10", "5", "100", OLD, "GBP")
    return trader


def _page(trader: Trader, language: str) -> str:
    """The dashboard's main part, whitespace collapsed (and dropped where a table's layout ignores it)."""
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    client.force_login(trader.user)
    html = client.get("/").content.decode()
    main = html[html.index("<main") : html.index("</main>")]
    main = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", main)
    main = re.sub(r"\s+", " ", main)
    return re.sub(r"\s*(</?(?:tr|td|th|tbody|thead|table|ul|li)\b[^>]*>)\s*", r"\1", main)


# The rows, totals and banner of many_kinds as the page prints them (whitespace normalised as _page does).
EXPECTED = {
    "en": {
        "rows": {
            880001: (
                '<tr><td data-label="Login"><a href="/accounts/77880001/">880001</a></td>'
                '<td data-label="Type"><span class="badge demo">Demo</span></td>'
                '<td data-label="Broker">Broker &lt;A&gt; &amp; Co</td>'
                '<td data-label="Balance" class="num">1,234.50 USD</td>'
                '<td data-label="Equity" class="num">1,300.25</td>'
                '<td data-label="Used margin" class="num">100.00</td>'
                '<td data-label="Free margin" class="num">1,200.25</td>'
                '<td data-label="Margin level" class="num">1,300.25 %</td>'
                '<td data-label="Open P/L" class="num">65.75</td>'
                '<td data-label="As of"><time datetime="2026-03-04T05:06:07+00:00">4 Mar, 05:06</time></td>'
                "</tr>"
            ),
            880002: (
                '<tr><td data-label="Login"><a href="/accounts/77880002/">880002</a></td>'
                '<td data-label="Type"><span class="badge live">Live</span></td>'
                '<td data-label="Broker">Broker &lt;A&gt; &amp; Co</td>'
                '<td data-label="Balance" class="num">98,765.43 EUR</td>'
                '<td data-label="Equity" class="num">98,000.10</td>'
                '<td data-label="Used margin" class="num">0.00</td>'
                '<td data-label="Free margin" class="num">98,000.10</td>'
                '<td data-label="Margin level" class="num"><span class="muted">No margin used</span></td>'
                '<td data-label="Open P/L" class="num loss">-765.33</td>'
                '<td data-label="As of"><time datetime="2001-02-03T04:05:06+00:00">3 Feb, 04:05</time> <span class="badge warn">Out of date</span></td>'
                "</tr>"
            ),
            880003: (
                '<tr><td data-label="Login"><a href="/accounts/77880003/">880003</a></td>'
                '<td data-label="Type"><span class="badge demo">Demo</span> <span class="badge">TradingView</span></td>'
                '<td data-label="Broker">Strict</td>'
                '<td data-label="Balance" class="num">1,000,000.00 JPY</td>'
                '<td data-label="Equity" class="num">999,000.50</td>'
                '<td data-label="Used margin" class="num">500,000.00</td>'
                '<td data-label="Free margin" class="num">499,000.50</td>'
                '<td data-label="Margin level" class="num">199.80 % <span class="badge danger">Margin call</span></td>'
                '<td data-label="Open P/L" class="num loss">-999.50</td>'
                '<td data-label="As of"><time datetime="2026-03-04T05:06:07+00:00">4 Mar, 05:06</time></td>'
                "</tr>"
            ),
            880004: (
                '<tr class="inactive"><td data-label="Login"><a href="/accounts/77880004/">880004</a> <span class="badge">No longer shared</span></td>'
                '<td data-label="Type"><span class="badge live">Live</span></td>'
                '<td data-label="Broker">Broker &lt;A&gt; &amp; Co</td>'
                '<td data-label="Balance" class="num">5.00 USD</td>'
                '<td data-label="Equity" class="num">4.00</td>'
                '<td data-label="Used margin" class="num">1.00</td>'
                '<td data-label="Free margin" class="num">3.00</td>'
                '<td data-label="Margin level" class="num">400.00 %</td>'
                '<td data-label="Open P/L" class="num loss">-1.00</td>'
                '<td data-label="As of"><time datetime="2001-02-03T04:05:06+00:00">3 Feb, 04:05</time> <span class="badge warn">Out of date</span></td>'
                "</tr>"
            ),
            880005: (
                '<tr class="inactive"><td data-label="Login"><a href="/accounts/77880005/">880005</a> <span class="badge">Disabled</span></td>'
                '<td data-label="Type"><span class="badge demo">Demo</span></td>'
                '<td data-label="Broker">Title &lt;x&gt;</td>'
                '<td data-label="Balance" class="num">-3.50 EUR</td>'
                '<td data-label="Equity" class="num">-10.25</td>'
                '<td data-label="Used margin" class="num">2.00</td>'
                '<td data-label="Free margin" class="num">-12.25</td>'
                '<td data-label="Margin level" class="num">-512.50 % <span class="badge danger">Margin call</span></td>'
                '<td data-label="Open P/L" class="num loss">-6.75</td>'
                '<td data-label="As of"><time datetime="2026-03-04T05:06:07+00:00">4 Mar, 05:06</time></td>'
                "</tr>"
            ),
            880006: (
                '<tr><td data-label="Login"><a href="/accounts/77880006/">880006</a></td>'
                '<td data-label="Type"><span class="badge live">Live</span></td>'
                '<td data-label="Broker"><span class="muted">Unknown</span></td>'
                '<td data-label="Balance" class="num">1,234,567.89 USD</td>'
                '<td colspan="5" class="muted" data-label="Equity">Not known yet</td>'
                '<td data-label="As of"><time datetime="2026-03-04T05:06:07+00:00">4 Mar, 05:06</time></td>'
                "</tr>"
            ),
            880007: (
                '<tr><td data-label="Login"><a href="/accounts/77880007/">880007</a></td>'
                '<td data-label="Type"><span class="badge demo">Demo</span></td>'
                '<td data-label="Broker">Title &lt;x&gt;</td>'
                '<td data-label="Balance" class="num"><span class="muted">Not known yet</span></td>'
                '<td colspan="5" class="muted" data-label="Equity">Not known yet</td>'
                '<td data-label="As of"><span class="muted">Never</span></td>'
                "</tr>"
            ),
            880008: (
                '<tr><td data-label="Login"><a href="/accounts/77880008/">880008</a></td>'
                '<td data-label="Type"><span class="badge live">Live</span></td>'
                '<td data-label="Broker">Broker &lt;A&gt; &amp; Co</td>'
                '<td data-label="Balance" class="num">0.01 USD</td>'
                '<td colspan="5" class="muted" data-label="Equity">Not known yet</td>'
                '<td data-label="As of"><time datetime="2026-03-04T05:06:07+00:00">4 Mar, 05:06</time></td>'
                "</tr>"
            ),
            880009: (
                '<tr><td data-label="Login"><a href="/accounts/77880009/">880009</a></td>'
                '<td data-label="Type"><span class="badge demo">Demo</span></td>'
                '<td data-label="Broker">Broker &lt;A&gt; &amp; Co</td>'
                '<td data-label="Balance" class="num">10.00 GBP</td>'
                '<td data-label="Equity" class="num">5.00</td>'
                '<td data-label="Used margin" class="num">100.00</td>'
                '<td data-label="Free margin" class="num">-95.00</td>'
                '<td data-label="Margin level" class="num">5.00 % <span class="badge danger">Margin call</span></td>'
                '<td data-label="Open P/L" class="num loss">-5.00</td>'
                '<td data-label="As of"><time datetime="2001-02-03T04:05:06+00:00">3 Feb, 04:05</time> <span class="badge warn">Out of date</span></td>'
                "</tr>"
            ),
        },
        "totals": [
            (
                '<tr><th scope="row" data-label="Currency">EUR</th>'
                '<td data-label="Accounts">1 <span class="badge warn">1 out of date</span></td>'
                '<td data-label="Balance" class="num">98,765.43</td>'
                '<td data-label="Equity" class="num">98,000.10</td>'
                '<td data-label="Used margin" class="num">0.00</td>'
                '<td data-label="Free margin" class="num">98,000.10</td>'
                '<td data-label="Open P/L" class="num">-765.33</td>'
                "</tr>"
            ),
            (
                '<tr><th scope="row" data-label="Currency">GBP</th>'
                '<td data-label="Accounts">1 <span class="badge warn">1 out of date</span></td>'
                '<td data-label="Balance" class="num">10.00</td>'
                '<td data-label="Equity" class="num">5.00</td>'
                '<td data-label="Used margin" class="num">100.00</td>'
                '<td data-label="Free margin" class="num">-95.00</td>'
                '<td data-label="Open P/L" class="num">-5.00</td>'
                "</tr>"
            ),
            (
                '<tr><th scope="row" data-label="Currency">JPY</th>'
                '<td data-label="Accounts">1</td>'
                '<td data-label="Balance" class="num">1,000,000.00</td>'
                '<td data-label="Equity" class="num">999,000.50</td>'
                '<td data-label="Used margin" class="num">500,000.00</td>'
                '<td data-label="Free margin" class="num">499,000.50</td>'
                '<td data-label="Open P/L" class="num">-999.50</td>'
                "</tr>"
            ),
            (
                '<tr><th scope="row" data-label="Currency">USD</th>'
                '<td data-label="Accounts">1</td>'
                '<td data-label="Balance" class="num">1,234.50</td>'
                '<td data-label="Equity" class="num">1,300.25</td>'
                '<td data-label="Used margin" class="num">100.00</td>'
                '<td data-label="Free margin" class="num">1,200.25</td>'
                '<td data-label="Open P/L" class="num">65.75</td>'
                "</tr>"
            ),
        ],
        "margin_calls": (
            '<ul><li><a href="/accounts/77880003/">880003</a>: margin level 199.80 % (margin call under 600.00 %)</li>'
            '<li><a href="/accounts/77880005/">880005</a>: margin level -512.50 % (margin call under 100.00 %)</li>'
            '<li><a href="/accounts/77880009/">880009</a>: margin level 5.00 % (margin call under 100.00 %)</li>'
            "</ul>"
        ),
        "synced": '<time datetime="2026-03-04T05:06:07+00:00">03/04/2026 5:06 a.m.</time> </p>',
        "count": "3 cTrader IDs, 9 trading accounts.",
    },
    "de": {
        "rows": {
            880001: (
                '<tr><td data-label="Login"><a href="/accounts/77880001/">880001</a></td>'
                '<td data-label="Art"><span class="badge demo">Demo</span></td>'
                '<td data-label="Broker">Broker &lt;A&gt; &amp; Co</td>'
                '<td data-label="Kontostand" class="num">1.234,50 USD</td>'
                '<td data-label="Eigenkapital" class="num">1.300,25</td>'
                '<td data-label="Genutzte Margin" class="num">100,00</td>'
                '<td data-label="Freie Margin" class="num">1.200,25</td>'
                '<td data-label="Margin-Level" class="num">1.300,25 %</td>'
                '<td data-label="Offener G/V" class="num">65,75</td>'
                '<td data-label="Stand"><time datetime="2026-03-04T05:06:07+00:00">4 Mär, 05:06</time></td>'
                "</tr>"
            ),
            880002: (
                '<tr><td data-label="Login"><a href="/accounts/77880002/">880002</a></td>'
                '<td data-label="Art"><span class="badge live">Live</span></td>'
                '<td data-label="Broker">Broker &lt;A&gt; &amp; Co</td>'
                '<td data-label="Kontostand" class="num">98.765,43 EUR</td>'
                '<td data-label="Eigenkapital" class="num">98.000,10</td>'
                '<td data-label="Genutzte Margin" class="num">0,00</td>'
                '<td data-label="Freie Margin" class="num">98.000,10</td>'
                '<td data-label="Margin-Level" class="num"><span class="muted">Keine Margin genutzt</span></td>'
                '<td data-label="Offener G/V" class="num loss">-765,33</td>'
                '<td data-label="Stand"><time datetime="2001-02-03T04:05:06+00:00">3 Feb, 04:05</time> <span class="badge warn">Veraltet</span></td>'
                "</tr>"
            ),
            880003: (
                '<tr><td data-label="Login"><a href="/accounts/77880003/">880003</a></td>'
                '<td data-label="Art"><span class="badge demo">Demo</span> <span class="badge">TradingView</span></td>'
                '<td data-label="Broker">Strict</td>'
                '<td data-label="Kontostand" class="num">1.000.000,00 JPY</td>'
                '<td data-label="Eigenkapital" class="num">999.000,50</td>'
                '<td data-label="Genutzte Margin" class="num">500.000,00</td>'
                '<td data-label="Freie Margin" class="num">499.000,50</td>'
                '<td data-label="Margin-Level" class="num">199,80 % <span class="badge danger">Margin Call</span></td>'
                '<td data-label="Offener G/V" class="num loss">-999,50</td>'
                '<td data-label="Stand"><time datetime="2026-03-04T05:06:07+00:00">4 Mär, 05:06</time></td>'
                "</tr>"
            ),
            880004: (
                '<tr class="inactive"><td data-label="Login"><a href="/accounts/77880004/">880004</a> <span class="badge">Nicht mehr geteilt</span></td>'
                '<td data-label="Art"><span class="badge live">Live</span></td>'
                '<td data-label="Broker">Broker &lt;A&gt; &amp; Co</td>'
                '<td data-label="Kontostand" class="num">5,00 USD</td>'
                '<td data-label="Eigenkapital" class="num">4,00</td>'
                '<td data-label="Genutzte Margin" class="num">1,00</td>'
                '<td data-label="Freie Margin" class="num">3,00</td>'
                '<td data-label="Margin-Level" class="num">400,00 %</td>'
                '<td data-label="Offener G/V" class="num loss">-1,00</td>'
                '<td data-label="Stand"><time datetime="2001-02-03T04:05:06+00:00">3 Feb, 04:05</time> <span class="badge warn">Veraltet</span></td>'
                "</tr>"
            ),
            880005: (
                '<tr class="inactive"><td data-label="Login"><a href="/accounts/77880005/">880005</a> <span class="badge">Deaktiviert</span></td>'
                '<td data-label="Art"><span class="badge demo">Demo</span></td>'
                '<td data-label="Broker">Title &lt;x&gt;</td>'
                '<td data-label="Kontostand" class="num">-3,50 EUR</td>'
                '<td data-label="Eigenkapital" class="num">-10,25</td>'
                '<td data-label="Genutzte Margin" class="num">2,00</td>'
                '<td data-label="Freie Margin" class="num">-12,25</td>'
                '<td data-label="Margin-Level" class="num">-512,50 % <span class="badge danger">Margin Call</span></td>'
                '<td data-label="Offener G/V" class="num loss">-6,75</td>'
                '<td data-label="Stand"><time datetime="2026-03-04T05:06:07+00:00">4 Mär, 05:06</time></td>'
                "</tr>"
            ),
            880006: (
                '<tr><td data-label="Login"><a href="/accounts/77880006/">880006</a></td>'
                '<td data-label="Art"><span class="badge live">Live</span></td>'
                '<td data-label="Broker"><span class="muted">Unbekannt</span></td>'
                '<td data-label="Kontostand" class="num">1.234.567,89 USD</td>'
                '<td colspan="5" class="muted" data-label="Eigenkapital">Noch nicht bekannt</td>'
                '<td data-label="Stand"><time datetime="2026-03-04T05:06:07+00:00">4 Mär, 05:06</time></td>'
                "</tr>"
            ),
            880007: (
                '<tr><td data-label="Login"><a href="/accounts/77880007/">880007</a></td>'
                '<td data-label="Art"><span class="badge demo">Demo</span></td>'
                '<td data-label="Broker">Title &lt;x&gt;</td>'
                '<td data-label="Kontostand" class="num"><span class="muted">Noch nicht bekannt</span></td>'
                '<td colspan="5" class="muted" data-label="Eigenkapital">Noch nicht bekannt</td>'
                '<td data-label="Stand"><span class="muted">Nie</span></td>'
                "</tr>"
            ),
            880008: (
                '<tr><td data-label="Login"><a href="/accounts/77880008/">880008</a></td>'
                '<td data-label="Art"><span class="badge live">Live</span></td>'
                '<td data-label="Broker">Broker &lt;A&gt; &amp; Co</td>'
                '<td data-label="Kontostand" class="num">0,01 USD</td>'
                '<td colspan="5" class="muted" data-label="Eigenkapital">Noch nicht bekannt</td>'
                '<td data-label="Stand"><time datetime="2026-03-04T05:06:07+00:00">4 Mär, 05:06</time></td>'
                "</tr>"
            ),
            880009: (
                '<tr><td data-label="Login"><a href="/accounts/77880009/">880009</a></td>'
                '<td data-label="Art"><span class="badge demo">Demo</span></td>'
                '<td data-label="Broker">Broker &lt;A&gt; &amp; Co</td>'
                '<td data-label="Kontostand" class="num">10,00 GBP</td>'
                '<td data-label="Eigenkapital" class="num">5,00</td>'
                '<td data-label="Genutzte Margin" class="num">100,00</td>'
                '<td data-label="Freie Margin" class="num">-95,00</td>'
                '<td data-label="Margin-Level" class="num">5,00 % <span class="badge danger">Margin Call</span></td>'
                '<td data-label="Offener G/V" class="num loss">-5,00</td>'
                '<td data-label="Stand"><time datetime="2001-02-03T04:05:06+00:00">3 Feb, 04:05</time> <span class="badge warn">Veraltet</span></td>'
                "</tr>"
            ),
        },
        "totals": [
            (
                '<tr><th scope="row" data-label="Währung">EUR</th>'
                '<td data-label="Konten">1 <span class="badge warn">1 veraltet</span></td>'
                '<td data-label="Kontostand" class="num">98.765,43</td>'
                '<td data-label="Eigenkapital" class="num">98.000,10</td>'
                '<td data-label="Genutzte Margin" class="num">0,00</td>'
                '<td data-label="Freie Margin" class="num">98.000,10</td>'
                '<td data-label="Offener G/V" class="num">-765,33</td>'
                "</tr>"
            ),
            (
                '<tr><th scope="row" data-label="Währung">GBP</th>'
                '<td data-label="Konten">1 <span class="badge warn">1 veraltet</span></td>'
                '<td data-label="Kontostand" class="num">10,00</td>'
                '<td data-label="Eigenkapital" class="num">5,00</td>'
                '<td data-label="Genutzte Margin" class="num">100,00</td>'
                '<td data-label="Freie Margin" class="num">-95,00</td>'
                '<td data-label="Offener G/V" class="num">-5,00</td>'
                "</tr>"
            ),
            (
                '<tr><th scope="row" data-label="Währung">JPY</th>'
                '<td data-label="Konten">1</td>'
                '<td data-label="Kontostand" class="num">1.000.000,00</td>'
                '<td data-label="Eigenkapital" class="num">999.000,50</td>'
                '<td data-label="Genutzte Margin" class="num">500.000,00</td>'
                '<td data-label="Freie Margin" class="num">499.000,50</td>'
                '<td data-label="Offener G/V" class="num">-999,50</td>'
                "</tr>"
            ),
            (
                '<tr><th scope="row" data-label="Währung">USD</th>'
                '<td data-label="Konten">1</td>'
                '<td data-label="Kontostand" class="num">1.234,50</td>'
                '<td data-label="Eigenkapital" class="num">1.300,25</td>'
                '<td data-label="Genutzte Margin" class="num">100,00</td>'
                '<td data-label="Freie Margin" class="num">1.200,25</td>'
                '<td data-label="Offener G/V" class="num">65,75</td>'
                "</tr>"
            ),
        ],
        "margin_calls": (
            '<ul><li><a href="/accounts/77880003/">880003</a>: Margin-Level 199,80 % (Margin Call unter 600,00 %)</li>'
            '<li><a href="/accounts/77880005/">880005</a>: Margin-Level -512,50 % (Margin Call unter 100,00 %)</li>'
            '<li><a href="/accounts/77880009/">880009</a>: Margin-Level 5,00 % (Margin Call unter 100,00 %)</li>'
            "</ul>"
        ),
        "synced": '<time datetime="2026-03-04T05:06:07+00:00">04.03.2026 05:06</time> </p>',
        "count": "3 cTrader IDs, 9 Handelskonten.",
    },
}


def _rows(page: str) -> dict[int, str]:
    """Each trading account's table row, by login."""
    rows = {}
    for row in re.findall(r"<tr[ >].*?</tr>", page):
        login = re.search(r">(\d+)</a>", row)
        if login:
            rows[int(login.group(1))] = row
    return rows


@pytest.mark.parametrize("language", ["en", "de"])
def test_dashboard_prints_the_same_figures_badges_dates_and_escaping(many_kinds, language):
    expected = EXPECTED[language]
    page = _page(many_kinds, language)

    assert _rows(page) == expected["rows"]
    assert [row for row in re.findall(r"<tr>.*?</tr>", page) if 'scope="row"' in row] == expected["totals"]
    assert expected["margin_calls"] in page
    assert expected["synced"] in page
    assert f'<div class="muted">{expected["count"]} <form' in page


def _accounts_with_figures(trader: Trader, count: int) -> None:
    """``count`` more accounts with fresh figures, in two currencies, under a new cTID of the trader."""
    ctid = CtidFactory(trader=trader)
    jurisdiction = Jurisdiction.objects.order_by("pk").first() or JurisdictionFactory()
    start = TradingAccount.objects.count()
    accounts = TradingAccount.objects.bulk_create(
        TradingAccount(
            ctid=ctid,
            ctid_trader_account_id=60_000_000 + start + i,
            login=600_000 + start + i,
            is_live=i % 2 == 0,
            jurisdiction=jurisdiction,
            balance=Decimal("1000.50") + i,
            currency="EUR" if i % 3 else "USD",
            balance_updated_at=FRESH,
        )
        for i in range(count)
    )
    for account in accounts:
        _figures(account, str(account.balance), str(account.balance + 5), "10", FRESH, account.currency)


def _statements(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
        assert response.status_code == 200
    return len(captured)


# What the page needs, whatever the number of accounts: the session and the user with their trader; for the
# dashboard the cTIDs joined to their accounts (with figures and jurisdictions) and, in one statement, whether
# there are openings or jobs in progress and whether two-step sign-in is on (the brand comes from the cache);
# for the API the count and the page.
@pytest.mark.parametrize(("url", "statements"), [("/", 4), ("/api/v1/accounts/?page_size=200", 4)])
def test_statements_are_the_same_for_20_and_200_accounts(trader, trader_client, url, statements):
    _accounts_with_figures(trader, 20)
    _statements(trader_client, url)  # the first request of a session also records when it was last seen
    assert _statements(trader_client, url) == statements
    _accounts_with_figures(trader, 180)
    assert _statements(trader_client, url) == statements


def test_one_page_of_the_account_list_holds_up_to_200_accounts(trader, trader_client):
    _accounts_with_figures(trader, 201)

    default = trader_client.get("/api/v1/accounts/").json()
    assert (default["count"], len(default["results"])) == (201, 100)
    page = trader_client.get("/api/v1/accounts/?page_size=200").json()
    assert len(page["results"]) == 200
    assert page["next"].endswith("?page=2&page_size=200")
    assert len(trader_client.get(page["next"]).json()["results"]) == 1
    assert len(trader_client.get("/api/v1/accounts/?page_size=1000").json()["results"]) == 200
    assert len(trader_client.get("/api/v1/accounts/?page_size=nonsense").json()["results"]) == 100


def test_the_page_size_and_its_maximum_are_in_the_schema(staff_client):
    schema = staff_client.get("/api/v1/schema/?format=json").json()
    parameters = {p["name"]: p for p in schema["paths"]["/api/v1/accounts/"]["get"]["parameters"]}
    assert parameters["page_size"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 200}
    assert "200" in parameters["page_size"]["description"]


def test_the_account_list_gives_the_same_bytes_as_the_account_serializer(many_kinds, trader_client):
    """The list is built without a serializer per account; each item is what ``TradingAccountSerializer``
    (which the account detail and the schema keep) makes of the same account."""
    odd = TradingAccount.objects.get(login=880001)
    AccountFigures.objects.filter(account=odd).update(
        positions_count=3, positions_volume=Decimal("12.50"), source=AccountFigures.Source.OPENAPI
    )
    zero = TradingAccount.objects.get(login=880009)
    AccountFigures.objects.filter(account=zero).update(balance=0, equity=0, free_margin=0, unrealized_pnl=0)
    TradingAccount.objects.filter(login=880003).update(last_synced_at=datetime(2026, 3, 4, 5, 6, 7, 891, UTC))
    accounts = accounts_for_user(user=many_kinds.user)

    for language in ("en", "de"):
        body = trader_client.get("/api/v1/accounts/?page_size=200", HTTP_ACCEPT_LANGUAGE=language).content
        expected = {"count": 9, "next": None, "previous": None}
        expected["results"] = TradingAccountSerializer(accounts, many=True).data
        assert body == JSONRenderer().render(expected)

    page = trader_client.get("/api/v1/accounts/?page=2&page_size=4").json()
    assert page["count"] == 9
    assert page["next"].endswith("?page=3&page_size=4")
    assert page["previous"].endswith("?page_size=4")
    assert page["results"] == json.loads(
        JSONRenderer().render(TradingAccountSerializer(accounts[4:8], many=True).data)
    )


def test_the_dashboard_reads_openings_and_jobs_only_when_there_are_some(trader, trader_client):
    # Most dashboards have neither: one statement says so. When there are some, they are read and shown.
    import uuid

    from accounts.models import AccountOpening, CtidJob
    from tests.factories import AccountOpeningFactory, AccountTypeFactory

    _accounts_with_figures(trader, 3)
    _statements(trader_client, "/")
    assert _statements(trader_client, "/") == 4
    AccountOpeningFactory(
        trader=trader, account_type=AccountTypeFactory(name="Zephyr"), state=AccountOpening.State.RUNNING
    )
    with CaptureQueriesContext(connection) as captured:
        page = trader_client.get("/").content.decode()
    assert len(captured) == 5
    assert "Your Zephyr account is being opened." in page
    CtidJob.objects.create(
        public_id=uuid.uuid4(), trader=trader, kind=CtidJob.Kind.CONNECT, state=CtidJob.State.DONE
    )
    assert _statements(trader_client, "/") == 7  # the job is read, shown and marked shown
    assert _statements(trader_client, "/") == 5  # shown once: no longer read
    AccountOpening.objects.update(state=AccountOpening.State.FAILED)
    assert "Your Zephyr account is being opened." not in trader_client.get("/").content.decode()
    assert _statements(trader_client, "/") == 4


@pytest.mark.skipif("postgres" not in connection.vendor, reason="needs PostgreSQL")
def test_the_dashboard_statements_are_prepared_once_per_connection(trader, trader_client):
    # The accounts and the notices: compiled once per process, planned once per connection
    # (clientarea/prepared.py), whatever the trader.
    def prepared(pattern: str) -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql AND statement LIKE %s",
                [pattern],
            )
            return cursor.fetchone()[0]

    _accounts_with_figures(trader, 3)
    for _ in range(3):
        assert trader_client.get("/").status_code == 200
    assert prepared('%FROM "accounts_ctid"%') == 1
    assert prepared('SELECT EXISTS%FROM "auth_user"%') == 1


@pytest.mark.skipif("postgres" not in connection.vendor, reason="needs PostgreSQL")
def test_the_dashboard_reads_every_table_by_the_traders_keys_whatever_the_tables_hold(trader, trader_client):
    # Planned once per connection for every trader (a generic plan): each table is read through an index on
    # the trader's or the user's key, never scanned, so 100,000 traders' openings, jobs and devices cost the
    # dashboard nothing.
    from tests.helpers.plans import generic_plan, scans_of

    _accounts_with_figures(trader, 3)
    with CaptureQueriesContext(connection) as captured:
        assert trader_client.get("/").status_code == 200
    notices = [q["sql"] for q in captured if q["sql"].startswith("SELECT EXISTS")]
    assert len(notices) == 1, [q["sql"] for q in captured]
    plan = generic_plan(notices[0])
    for table in (
        "accounts_accountopening",
        "accounts_ctidjob",
        "twofactor_authenticatordevice",
        "auth_user",
    ):
        reads = scans_of(plan, table)
        assert reads, plan
        assert not any("Seq Scan" in line for line in reads), plan  # an index scan, or a bitmap of one


def test_the_account_list_pages_through_every_account_in_order_from_prepared_statements(
    trader, trader_client
):
    # Counted and sliced by two statements compiled once per process and prepared once per connection: the
    # pages hold every account once, in the list's order, whatever the page size.
    from accounts.selectors import accounts_for_user

    _accounts_with_figures(trader, 7)
    expected = list(accounts_for_user(user=trader.user).values_list("ctid_trader_account_id", flat=True))
    for size in (1, 3, 7, 200):
        seen, url = [], f"/api/v1/accounts/?page_size={size}"
        while url:
            page = trader_client.get(url).json()
            assert page["count"] == 7
            assert len(page["results"]) <= size
            seen += [item["ctid_trader_account_id"] for item in page["results"]]
            url = page["next"]
        assert seen == expected
    assert trader_client.get("/api/v1/accounts/?page=9&page_size=3").status_code == 404
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql AND statement LIKE %s",
                ['%FROM "accounts_tradingaccount"%'],
            )
            assert cursor.fetchone()[0] == 2  # the page and the count


def test_a_translated_label_with_percent_signs_and_braces_prints_as_written(trader, monkeypatch):
    # The rows' markup is filled once per page with the translated labels, then with each row's values:
    # neither step may read a label's "%" or "{...}" as a field.
    from accounts.selectors import dashboard_ctids
    from accounts.views import dashboard_rows

    _accounts_with_figures(trader, 1)
    monkeypatch.setattr(dashboard_rows, "gettext", lambda text: f"{text} 100% {{x}} %s <b>")
    [(_ctid, accounts)] = dashboard_ctids(user=trader.user)
    row = str(dashboard_rows.AccountRows(now=FRESH).table(accounts))
    assert 'data-label="Balance 100% {x} %s &lt;b&gt;"' in row
    assert 'data-label="As of 100% {x} %s &lt;b&gt;"' in row
    assert f">{accounts[0].login}</a>" in row
