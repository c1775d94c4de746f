"""The simulated world of the account figures tests: positions with known P/L, and traders linked to it."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.models import Ctid, CtidToken, Jurisdiction, Trader, TradingAccount
from sandbox.world import Grant, SimAccount, SimPosition, World

MANAGER_LOGIN, MANAGER_PASSWORD = 30077, "manager-pass-figures"
NOW = 1_780_000_000.0

USER_ID = 9300001
LIVE_USD = 62000001  # 10,000.00 USD, two positions: equity 10,100.00, used margin 2,000.00
DEMO_USD8 = 62000002  # 520.15000000 USD (moneyDigits 8), one position: equity 510.15, used margin 100.00
LIVE_EUR = 62000003  # 750.00 EUR, no position: margin level none
OTHER_BROKER = 62000004  # a broker with no jurisdiction here


def figures_people(world: World) -> None:
    """One cTID whose open positions have known P/L, on a clock stopped at NOW."""
    world.clock = lambda: NOW
    live_usd = SimAccount(LIVE_USD, 8100001, True, "FIG-BROKER", "Fig", 1_000_000, 2, "USD")
    live_usd.positions = [
        SimPosition(
            501, 1, "BUY", 10_000_000, 150_000, net_pnl=12_345, swap=-100, commission=-200, opened_at=NOW
        ),
        SimPosition(502, 2, "SELL", 2_500_000, 50_000, net_pnl=-2_345, opened_at=NOW),
    ]
    demo_usd8 = SimAccount(DEMO_USD8, 8100002, False, "FIG-BROKER", "Fig", 52_015_000_000, 8, "USD")
    demo_usd8.positions = [
        SimPosition(503, 1, "BUY", 100_000, 10_000_000_000, net_pnl=-1_000_000_000, opened_at=NOW)
    ]
    world.add_ctid(
        USER_ID,
        "Figures",
        [
            live_usd,
            demo_usd8,
            SimAccount(LIVE_EUR, 8100003, True, "FIG-BROKER", "Fig", 75_000, 2, "EUR"),
            SimAccount(OTHER_BROKER, 8100004, True, "ELSEWHERE", "Elsewhere", 99_900, 2, "USD"),
        ],
    )


def link(world: World, user_id: int = USER_ID, *, trader: Trader | None = None) -> Ctid:
    """A trader who connected the simulated cTID, its accounts stored as the connect flow stores them."""
    with world.lock:
        sim_accounts = list(world.ctids[user_id].accounts)
    tokens = world.issue_tokens(
        Grant(user_id, tuple(a.ctid_trader_account_id for a in sim_accounts), "accounts")
    )
    if trader is None:
        user = get_user_model().objects.create_user(username=f"fig{user_id}", password="x-Pass-123")
        trader = Trader.objects.create(user=user)
    ctid = Ctid.objects.create(user_id=user_id, trader=trader)
    CtidToken.objects.create(
        ctid=ctid,
        access_token=str(tokens["accessToken"]),
        refresh_token=str(tokens["refreshToken"]),
        scope="accounts",
        expires_at=timezone.now() + timedelta(days=30),
    )
    jurisdiction, _ = Jurisdiction.objects.get_or_create(
        broker_name="FIG-BROKER", defaults={"display_name": "Fig"}
    )
    TradingAccount.objects.bulk_create(
        TradingAccount(
            ctid_trader_account_id=a.ctid_trader_account_id,
            ctid=ctid,
            login=a.trader_login,
            is_live=a.is_live,
            broker_name=a.broker_name,
            broker_title=a.broker_title_short,
            jurisdiction=jurisdiction if a.broker_name == "FIG-BROKER" else None,
            currency=a.deposit_asset,
        )
        for a in sim_accounts
    )
    return ctid
