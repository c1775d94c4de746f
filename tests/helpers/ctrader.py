"""The simulated cTrader side: the app's credentials, the simulated world, and rows connected to it."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.ctrader.oauth import TokenPair
from accounts.models import Ctid, CtidToken, Trader, TradingAccount
from accounts.services.tokens import ctid_token_store
from sandbox.world import Grant, SimAccount, World
from tests.factories import TraderFactory
from tests.helpers.figures import figures_people

# The Open API application the simulators accept (cTrader ID, Open API live and demo).
CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret-value"


def _alice_and_bob(world: World) -> None:
    world.add_ctid(
        9100001,
        "Alice",
        [
            SimAccount(61000001, 710001, True, "TEST-EU", "Test EU", 1_250_050, 2, "EUR"),
            SimAccount(61000002, 710002, False, "TEST-EU", "Test EU", 10_000_000, 2, "EUR"),
            SimAccount(61000003, 710003, True, "TEST-UNKNOWN", "Test Other", 52_015_000_000, 8, "USD"),
        ],
    )
    world.add_ctid(
        9100002, "Bob", [SimAccount(61000011, 710011, False, "TEST-EU", "Test EU", 500_000, 2, "USD")]
    )


def _ann(world: World) -> None:
    world.add_ctid(
        9100001,
        "Ann",
        [
            SimAccount(61000001, 7100001, True, "BROKER-EU", "Broker EU", 1_250_050, 2, "EUR"),
            SimAccount(61000002, 7100002, False, "BROKER-EU", "Broker EU", 10_000_000, 2, "USD"),
            SimAccount(61000003, 7100003, True, "BROKER-INTL", "Broker Intl", 52_015_000_000, 8, "USD"),
        ],
    )


# The people a simulated world can start with, by name (the ``world_people`` fixture picks one).
PEOPLE: dict[str, Callable[[World], None]] = {
    # Alice: live and demo accounts in a known jurisdiction and a live one in an unknown; Bob: one demo.
    "alice_and_bob": _alice_and_bob,
    # Ann: two live accounts in two jurisdictions and one demo.
    "ann": _ann,
    "figures": figures_people,
}


def make_world(people: str = "alice_and_bob") -> World:
    """A fresh simulated cTrader world holding the named people and their accounts."""
    world = World()
    PEOPLE[people](world)
    return world


def issue(world: World, user_id: int, scope: str = "accounts") -> dict[str, object]:
    """Tokens for every account of a simulated cTID, as a consent ticking all of them would give."""
    with world.lock:
        account_ids = tuple(a.ctid_trader_account_id for a in world.ctids[user_id].accounts)
    return world.issue_tokens(Grant(user_id, account_ids, scope))


def make_trader(username: str = "alice", *, verified: bool = False) -> Trader:
    """A trader whose user is ``username`` (password ``tests.factories.PASSWORD``)."""
    return TraderFactory(user__username=username, kyc_verified=verified)


def connect_in_world(world: World, *, trader: Trader, user_id: int = 9100001) -> tuple[Ctid, dict]:
    """A cTID with a token pair that the simulated cTrader ID really issued (as after a consent)."""
    issued = issue(world, user_id)
    ctid = Ctid.objects.create(user_id=user_id, trader=trader)
    ctid_token_store(
        ctid=ctid,
        pair=TokenPair(
            str(issued["accessToken"]), str(issued["refreshToken"]), int(str(issued["expiresIn"])), "bearer"
        ),
        scope="accounts",
    )
    return ctid, issued


def link_ctid(world: World, user_id: int, *, username: str | None = None) -> tuple[Ctid, dict[str, object]]:
    """A trader who connected the simulated cTID: tokens from the World, accounts stored as the connect flow would."""
    tokens = issue(world, user_id)
    user = get_user_model().objects.create_user(
        username=username or f"trader{user_id}", password="x-Pass-123"
    )
    trader = Trader.objects.create(user=user)
    ctid = Ctid.objects.create(user_id=user_id, trader=trader)
    CtidToken.objects.create(
        ctid=ctid,
        access_token=str(tokens["accessToken"]),
        refresh_token=str(tokens["refreshToken"]),
        scope="accounts",
        expires_at=timezone.now() + timedelta(days=30),
    )
    with world.lock:
        sim_accounts = list(world.ctids[user_id].accounts)
    TradingAccount.objects.bulk_create(
        TradingAccount(
            ctid_trader_account_id=a.ctid_trader_account_id,
            ctid=ctid,
            login=a.trader_login,
            is_live=a.is_live,
            broker_title=a.broker_title_short,
        )
        for a in sim_accounts
    )
    return ctid, tokens


def stored(ctid: Ctid) -> CtidToken:
    return CtidToken.objects.get(ctid=ctid)


def wait_for(predicate: Callable[[], object], timeout: float = 30.0) -> None:
    """Poll until the worker has done its part (not a timing assertion: only a bound on waiting)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("the worker did not reach the expected state in time")
        time.sleep(0.05)
