"""Figures read from the loopback simulators: Open API positions with known P/L and the WebServices list."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.ctrader.openapi.messages import PayloadType
from accounts.models import AccountFigures, AccountSnapshot, TradingAccount
from accounts.services.figures import FigureRows, account_figures_store
from accounts.services.figures_openapi import ctid_figures_refresh
from accounts.tasks import run_figures_refresh
from tests.helpers.figures import DEMO_USD8, LIVE_EUR, LIVE_USD, NOW, OTHER_BROKER, link

pytestmark = pytest.mark.django_db


# The figures tests' World: one cTID whose open positions have known P/L (tests.helpers.figures).
@pytest.fixture
def world_people() -> str:
    return "figures"


def figures(account_id: int) -> AccountFigures:
    return AccountFigures.objects.get(account__ctid_trader_account_id=account_id)


def test_open_api_figures_follow_the_formulas_on_positions_with_known_pnl(world, figures_openapi):
    ctid = link(world)

    result = ctid_figures_refresh(ctid_id=ctid.pk)

    assert result.stored == 4
    usd = figures(LIVE_USD)
    # equity = balance + sum of net unrealized P/L; free = equity - used; level = equity / used x 100.
    assert usd.balance == Decimal("10000.00")
    assert usd.equity == Decimal("10100.00")
    assert usd.used_margin == Decimal("2000.00")
    assert usd.free_margin == Decimal("8100.00")
    assert usd.unrealized_pnl == Decimal("100.00")
    assert usd.margin_level == Decimal("505.0000")
    assert (usd.positions_count, usd.positions_volume) == (2, Decimal("125000.00"))
    assert usd.currency == "USD"
    assert usd.source == AccountFigures.Source.OPENAPI
    assert usd.balance_version == 1
    # moneyDigits 8: 52015000000 is 520.15.
    demo = figures(DEMO_USD8)
    assert (demo.balance, demo.equity, demo.used_margin) == (
        Decimal("520.15"),
        Decimal("510.15"),
        Decimal("100"),
    )
    assert demo.margin_level == Decimal("510.1500")
    eur = figures(LIVE_EUR)
    assert eur.equity == eur.balance == eur.free_margin == Decimal("750.00")
    assert eur.margin_level is None
    assert eur.positions_count == 0
    assert timezone.now() - usd.read_at < timedelta(seconds=30)
    # The first read is the first point of each account's history.
    assert AccountSnapshot.objects.filter(account__ctid=ctid).count() == 4


def test_open_api_reads_use_the_per_position_requests_only(world, figures_openapi):
    ctid = link(world)
    ctid_figures_refresh(ctid_id=ctid.pk)

    sent = {r.payload_type for sim in figures_openapi.values() for r in sim.received()}
    assert {
        PayloadType.RECONCILE_REQ,
        PayloadType.GET_POSITION_UNREALIZED_PNL_REQ,
        PayloadType.TRADER_REQ,
    } <= sent
    # The account-level P/L subscriptions (2189-2193) were removed by Spotware in 2025.
    assert not sent & set(range(2189, 2194))
    # Demo accounts are read on the demo host only, live ones on the live host only.
    demo_reads = {
        r.payload["ctidTraderAccountId"] for r in figures_openapi["demo"].received(PayloadType.RECONCILE_REQ)
    }
    assert demo_reads == {DEMO_USD8}


def test_moving_pnl_moves_equity_and_adds_history_points(world, figures_openapi, settings):
    settings.FIGURES_SNAPSHOT_SECONDS = 0
    ctid = link(world)
    with world.lock:
        position = world.account(LIVE_USD).positions[0]
        position.swing = 50_000
        position.period = 40.0
    world.clock = lambda: NOW + 10  # a quarter period: +500.00
    ctid_figures_refresh(ctid_id=ctid.pk, ctid_trader_account_ids=[LIVE_USD])
    first = figures(LIVE_USD).equity
    world.clock = lambda: NOW + 30  # three quarters: -500.00
    ctid_figures_refresh(ctid_id=ctid.pk, ctid_trader_account_ids=[LIVE_USD])
    second = figures(LIVE_USD).equity

    assert (first, second) == (Decimal("10600.00"), Decimal("9600.00"))
    history = list(AccountSnapshot.objects.filter(account__ctid_trader_account_id=LIVE_USD).order_by("at"))
    assert [h.equity for h in history] == [Decimal("10600.00"), Decimal("9600.00")]


def _rows(balance: int, equity: int, version: int | None) -> FigureRows:
    return FigureRows(
        keys=[LIVE_USD],
        balance=[balance],
        equity=[equity],
        used_margin=[0],
        free_margin=[equity],
        scale=[2],
        money_digits=[2],
        currency=["USD"],
        positions_count=[None],
        positions_volume=[None],
        balance_version=[version],
    )


def test_an_older_balance_version_or_read_never_overwrites_newer_figures(world):
    link(world)
    now = timezone.now()
    store = account_figures_store
    store(rows=_rows(500_000, 510_000, 7), key="ctid_trader_account_id", source="openapi", read_at=now)

    # Read later but carrying an older balanceVersion (an answer that overtook a newer one): ignored.
    late = store(
        rows=_rows(400_000, 400_000, 6),
        key="ctid_trader_account_id",
        source="openapi",
        read_at=now + timedelta(seconds=1),
    )
    # A newer version but read earlier than the stored figures: ignored too.
    early = store(
        rows=_rows(300_000, 300_000, 8),
        key="ctid_trader_account_id",
        source="openapi",
        read_at=now - timedelta(seconds=1),
    )

    assert (late.stored, early.stored) == (0, 0)
    kept = figures(LIVE_USD)
    assert (kept.balance, kept.equity, kept.balance_version) == (Decimal("5000.00"), Decimal("5100.00"), 7)
    newer = store(
        rows=_rows(450_000, 450_000, 8),
        key="ctid_trader_account_id",
        source="openapi",
        read_at=now + timedelta(seconds=2),
    )
    assert newer.stored == 1
    assert figures(LIVE_USD).balance == Decimal("4500.00")


def test_history_points_on_balance_moves_significant_equity_moves_and_after_the_spacing(world, settings):
    settings.FIGURES_SNAPSHOT_SECONDS = 60
    settings.FIGURES_SIGNIFICANT_CHANGE_PERCENT = 1.0
    link(world)
    t0 = timezone.now()

    def store(balance: int, equity: int, seconds: float) -> int:
        return account_figures_store(
            rows=_rows(balance, equity, None),
            key="ctid_trader_account_id",
            source="openapi",
            read_at=t0 + timedelta(seconds=seconds),
        ).snapshots

    assert store(1_000_000, 1_000_000, 0) == 1  # first figures
    assert store(1_000_000, 1_000_000, 5) == 0  # nothing moved
    assert store(1_000_000, 1_005_000, 10) == 0  # equity +0.5 % within the spacing
    assert store(1_000_000, 1_020_000, 15) == 1  # equity +2 %: significant
    assert store(1_100_000, 1_020_000, 20) == 1  # a deposit: the balance moved
    assert store(1_100_000, 1_021_000, 30) == 0  # small and too soon
    assert store(1_100_000, 1_021_000, 200) == 1  # the spacing has passed and the equity had moved
    assert AccountSnapshot.objects.count() == 4


def test_webservices_list_refresh_scales_by_money_digits_and_matches_by_login_and_environment(
    world, figures_webservices, settings
):
    ctid = link(world)
    # Same login on the other environment: a different trader, never mixed up.
    TradingAccount.objects.create(
        ctid_trader_account_id=62000099, ctid=ctid, login=8100002, is_live=True, jurisdiction=None
    )

    done = run_figures_refresh()

    assert done == {"live": 2, "demo": 1}
    usd = figures(LIVE_USD)
    assert usd.source == AccountFigures.Source.WEBSERVICES
    assert (usd.balance, usd.equity, usd.used_margin, usd.free_margin) == (
        Decimal("10000.00"),
        Decimal("10100.00"),
        Decimal("2000.00"),
        Decimal("8100.00"),
    )
    assert usd.margin_level == Decimal("505.0000")
    assert usd.positions_count is None
    demo = figures(DEMO_USD8)
    assert (demo.balance, demo.equity, demo.money_digits) == (Decimal("520.15"), Decimal("510.15"), 8)
    assert figures(LIVE_EUR).currency == "EUR"
    # No jurisdiction here for that broker: its logins may belong to another broker's server.
    assert not AccountFigures.objects.filter(
        account__ctid_trader_account_id__in=[OTHER_BROKER, 62000099]
    ).exists()
    # Read in pages, one per trader group, with GET calls only.
    state = figures_webservices["live"][0]
    assert len(state.calls_to("traders_list")) == 2
    assert {c.method for c in state.calls if c.call != "manager_token"} == {"GET"}
    # The manager token (a rate-limited POST) is fetched once per process, not at every refresh.
    run_figures_refresh()
    assert len(state.calls_to("traders_list")) == 4
    assert len(state.calls_to("manager_token")) == 1


def test_webservices_refresh_failure_keeps_the_stored_figures(world, figures_webservices):
    link(world)
    run_figures_refresh()
    before = figures(LIVE_USD)
    for state, _server in figures_webservices.values():
        state.fail_next("traders_list", "UNKNOWN_ERROR", times=5)

    run_figures_refresh()

    after = figures(LIVE_USD)
    assert (after.equity, after.read_at) == (before.equity, before.read_at)


def test_bulk_store_keeps_currencies_with_quotes_and_backslashes_intact(world):
    link(world)
    rows = _rows(100, 100, None)
    rows.currency = ['U"S\\D,{x}']
    account_figures_store(rows=rows, key="ctid_trader_account_id", source="openapi", read_at=timezone.now())

    assert figures(LIVE_USD).currency == 'U"S\\D,{x}'


def test_an_environment_without_manager_credentials_is_read_over_the_open_api(
    world, figures_webservices, figures_openapi, settings
):
    settings.CTRADER_MANAGER_DEMO_PASSWORD = ""
    link(world)

    done = run_figures_refresh()

    assert done == {"live": 2, "demo_openapi_tasks": 1}
    assert figures(LIVE_USD).source == AccountFigures.Source.WEBSERVICES
    demo = figures(DEMO_USD8)
    assert demo.source == AccountFigures.Source.OPENAPI
    assert demo.equity == Decimal("510.15")
    # The Open API read only the demo environment's account.
    assert not figures_openapi["live"].received(PayloadType.RECONCILE_REQ)
